/**
 * Runway's rows as the Assistants API v2 sends its objects (OpenAI's OpenAPI description,
 * `AssistantObject`, `ThreadObject`, `MessageObject`, `RunObject`, `RunStepObject`): snake_case
 * fields, `object` names, lowercase statuses, Unix-second timestamps. The one place that
 * conversion is written: the REST answers and the streaming events' payloads both use it.
 * Pure functions of a row, typed by the official client's own types, so a field it lacks,
 * or spells otherwise, does not compile.
 *
 * What Runway does not record is given as the API gives an absent value: no tool
 * resources, no attachments or annotations, and a message's `completed_at`,
 * `incomplete_at` and `incomplete_details` (Runway keeps a message's status, not when or
 * why it ended) are null.
 */
import type { Assistant, AssistantTool } from 'openai/resources/beta/assistants';
import type { Message } from 'openai/resources/beta/threads/messages';
import type { RequiredActionFunctionToolCall, Run } from 'openai/resources/beta/threads/runs/runs';
import type { RunStep } from 'openai/resources/beta/threads/runs/steps';
import type { AssistantResponseFormatOption, AssistantToolChoiceOption, Thread } from 'openai/resources/beta/threads/threads';
import type { AssistantRow, MessageRow, RunRow, RunStepRow, ThreadRow } from '../db/schema.js';
import type { ResponseFormat, RunUsage, StepDetails, Tool, ToolCall, ToolChoice } from '../domain/run.js';

export function assistantObject(a: AssistantRow): Assistant {
  return {
    id: a.id,
    object: 'assistant',
    created_at: a.createdAt,
    name: a.name,
    description: a.description,
    model: a.model,
    instructions: a.instructions,
    tools: a.tools.map(toolObject),
    tool_resources: {},
    metadata: a.metadata,
    // What the assistant's runs take unless they say otherwise.
    temperature: a.temperature,
    top_p: a.topP,
    response_format: responseFormatOption(a.responseFormat),
  };
}

export function threadObject(t: ThreadRow): Thread {
  return { id: t.id, object: 'thread', created_at: t.createdAt, tool_resources: {}, metadata: t.metadata };
}

export function messageObject(m: MessageRow): Message {
  return {
    id: m.id,
    object: 'thread.message',
    created_at: m.createdAt,
    thread_id: m.threadId,
    status: m.status,
    incomplete_details: null,
    completed_at: null,
    incomplete_at: null,
    role: m.role,
    content: [{ type: 'text', text: { value: m.content, annotations: [] } }],
    assistant_id: m.assistantId,
    run_id: m.runId,
    attachments: [],
    metadata: m.metadata,
  };
}

export function runObject(r: RunRow): Run {
  return {
    id: r.id,
    object: 'thread.run',
    created_at: r.createdAt,
    thread_id: r.threadId,
    assistant_id: r.assistantId,
    status: r.status,
    required_action: r.requiredAction && {
      type: 'submit_tool_outputs',
      submit_tool_outputs: { tool_calls: r.requiredAction.submitToolOutputs.toolCalls.map(toolCallObject) },
    },
    last_error: r.lastError && { code: r.lastError.code, message: r.lastError.message },
    expires_at: r.expiresAt,
    started_at: r.startedAt,
    cancelled_at: r.cancelledAt,
    failed_at: r.failedAt,
    completed_at: r.completedAt,
    incomplete_details: r.incompleteDetails && { reason: r.incompleteDetails.reason },
    model: r.model,
    instructions: r.instructions,
    tools: r.tools.map(toolObject),
    metadata: r.metadata,
    usage: usageObject(r.usage),
    temperature: r.temperature,
    top_p: r.topP,
    max_prompt_tokens: r.maxPromptTokens,
    max_completion_tokens: r.maxCompletionTokens,
    truncation_strategy: r.truncationStrategy && {
      type: r.truncationStrategy.type,
      last_messages: r.truncationStrategy.lastMessages ?? null,
    },
    tool_choice: toolChoiceOption(r.toolChoice),
    parallel_tool_calls: r.parallelToolCalls,
    response_format: responseFormatOption(r.responseFormat),
  };
}

export function runStepObject(s: RunStepRow): RunStep {
  return {
    id: s.id,
    object: 'thread.run.step',
    created_at: s.createdAt,
    assistant_id: s.assistantId,
    thread_id: s.threadId,
    run_id: s.runId,
    type: s.type,
    status: s.status,
    step_details: stepDetailsObject(s.stepDetails),
    // The API's step errors have no `invalid_prompt`: a step ended by such a run failed on the server's side of the call.
    last_error: s.lastError && {
      code: s.lastError.code === 'invalid_prompt' ? 'server_error' : s.lastError.code,
      message: s.lastError.message,
    },
    expired_at: s.expiredAt,
    cancelled_at: s.cancelledAt,
    failed_at: s.failedAt,
    completed_at: s.completedAt,
    metadata: {},
    usage: usageObject(s.usage),
  };
}

/**
 * A page of a list, as the API sends it. An empty page has no first or last id: null, as
 * the API answers it (its newer list schemas say so; the Assistants ones predate that).
 */
export interface ListObject<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

export function listObject<T extends { id: string }>(data: T[], hasMore: boolean): ListObject<T> {
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: hasMore };
}

function toolObject(tool: Tool): AssistantTool {
  const { name, description, parameters, strict } = tool.function;
  return {
    type: 'function',
    function: {
      name,
      ...(description != null ? { description } : {}),
      ...(parameters != null ? { parameters } : {}),
      ...(strict != null ? { strict } : {}),
    },
  };
}

function toolCallObject(call: ToolCall): RequiredActionFunctionToolCall {
  return { id: call.id, type: 'function', function: { name: call.function.name, arguments: call.function.arguments } };
}

function usageObject(usage: RunUsage | null) {
  return usage && { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.totalTokens };
}

function toolChoiceOption(choice: ToolChoice | null): AssistantToolChoiceOption | null {
  if (!choice) return null;
  return 'mode' in choice ? choice.mode : { type: 'function', function: { name: choice.function.name } };
}

function responseFormatOption(format: ResponseFormat | null): AssistantResponseFormatOption | null {
  if (!format) return null;
  if (format.type === 'auto') return 'auto';
  if (format.type !== 'json_schema') return { type: format.type };
  const { name, description, schema, strict } = format.jsonSchema;
  return {
    type: 'json_schema',
    json_schema: {
      name,
      ...(description != null ? { description } : {}),
      ...(schema != null ? { schema } : {}),
      ...(strict != null ? { strict } : {}),
    },
  };
}

function stepDetailsObject(details: StepDetails): RunStep['step_details'] {
  if (details.type === 'message_creation') {
    return { type: 'message_creation', message_creation: { message_id: details.messageCreation.messageId } };
  }
  return {
    type: 'tool_calls',
    tool_calls: details.toolCalls.map((call) => ({
      id: call.id,
      type: 'function',
      function: { name: call.function.name, arguments: call.function.arguments, output: call.function.output },
    })),
  };
}

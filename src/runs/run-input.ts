/**
 * What a client may ask of runs, as the use cases take it: the input of createRun and
 * createThreadAndRun, what a run is made with, and the check of submitted tool outputs.
 */
import type { AssistantRow } from '../db/schema.js';
import { BadUserInputError, type DomainError } from '../domain/errors.js';
import type { Metadata, ResponseFormat, Tool, ToolCall, ToolChoice, ToolOutput, TruncationStrategy } from '../domain/run.js';
import type { CreateThreadInput } from '../threads/thread-service.js';

export interface CreateRunInput {
  assistantId: string;
  model?: string | null;
  instructions?: string | null;
  additionalInstructions?: string | null;
  additionalMessages?: { role: 'user' | 'assistant'; content: string; metadata?: Metadata | null }[] | null;
  tools?: Tool[] | null;
  metadata?: Metadata | null;
  temperature?: number | null;
  topP?: number | null;
  maxPromptTokens?: number | null;
  maxCompletionTokens?: number | null;
  truncationStrategy?: TruncationStrategy | null;
  toolChoice?: ToolChoice | null;
  parallelToolCalls?: boolean | null;
  responseFormat?: ResponseFormat | null;
}

/**
 * A new thread and a run on it (the Assistants API's createThreadAndRun): the thread's
 * messages and metadata, and every option of createRun but those that add to an
 * existing thread.
 */
export interface CreateThreadAndRunInput extends Omit<CreateRunInput, 'additionalInstructions' | 'additionalMessages'> {
  thread?: CreateThreadInput | null;
}

/**
 * What a run asked for runs with: its assistant, and the model and tools it overrides or
 * takes from it; or why no run can be made of the input (the assistant, when found, too).
 */
export type RunSettings =
  | { invalid: DomainError; assistant: AssistantRow | undefined }
  | { invalid: undefined; assistant: AssistantRow; model: string; tools: Tool[] };

/** Exactly one output per pending call: no missing, unknown or repeated id. */
export function checkToolOutputs(calls: ToolCall[], outputs: ToolOutput[]): void {
  const pending = new Set(calls.map((c) => c.id));
  const seen = new Set<string>();
  const repeated = new Set<string>();
  const unknown: string[] = [];
  for (const { toolCallId } of outputs) {
    if (!pending.has(toolCallId)) unknown.push(toolCallId);
    else if (seen.has(toolCallId)) repeated.add(toolCallId);
    seen.add(toolCallId);
  }
  const missing = [...pending].filter((id) => !seen.has(id));
  const problems = [
    missing.length ? `missing outputs for tool calls ${missing.join(', ')}` : '',
    unknown.length ? `unknown tool call ids ${unknown.join(', ')}` : '',
    repeated.size ? `repeated tool call ids ${[...repeated].join(', ')}` : '',
  ].filter(Boolean);
  if (problems.length) {
    throw new BadUserInputError(`Invalid toolOutputs: ${problems.join('; ')}.`, {
      argument: 'toolOutputs',
      missing,
      unknown,
      repeated: [...repeated],
    });
  }
}

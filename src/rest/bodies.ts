/**
 * What REST requests carry (OpenAI's request schemas: `CreateAssistantRequest`,
 * `CreateThreadRequest`, `CreateMessageRequest`, `CreateRunRequest`,
 * `CreateThreadAndRunRequest`, `ModifyRunRequest`, `SubmitToolOutputsRunRequest`...), as zod
 * schemas made of the rules GraphQL applies (domain/input-rules.ts), each mapped to the
 * input the use cases take. snake_case in, camelCase out; where the API's schema is closed
 * (`additionalProperties: false`) an unknown field is refused, as the API refuses it.
 *
 * The API's file tools and tool resources, images and attachments are refused when given
 * (an empty value is accepted): Runway runs function tools on text. So is reasoning_effort,
 * which Runway passes to no model.
 */
import { z } from 'zod';
import type { CreateAssistantInput } from '../assistants/assistant-service.js';
import {
  assistantDescriptionSchema,
  assistantNameSchema,
  functionNameSchema,
  idempotencyKeySchema,
  instructionsSchema,
  jsonSchemaObjectSchema,
  lastMessagesSchema,
  LIMITS,
  messageContentSchema,
  metadataSchema,
  modelSchema,
  responseFormatRule,
  temperatureSchema,
  tokenLimitSchema,
  TOO_MANY_TOOLS,
  toolOutputSchema,
  topPSchema,
  truncationStrategyRule,
  type ObjectRule,
} from '../domain/input-rules.js';
import type { Metadata, ResponseFormat, Tool, ToolChoice, ToolOutput, TruncationStrategy } from '../domain/run.js';
import type { CreateRunInput, CreateThreadAndRunInput } from '../runs/index.js';
import type { CreateMessageInput, CreateThreadInput } from '../threads/thread-service.js';
import { snakeCase } from './errors.js';

// ---- pieces ----

/** An object rule of the use cases, checked on the object as they take it; the issue names the field as REST spells it. */
function obeys<T>(rule: ObjectRule<T>) {
  return (value: T, ctx: z.RefinementCtx) => {
    if (!rule.holds(value)) ctx.addIssue({ code: 'custom', message: rule.message, path: rule.path.map(snakeCase) });
  };
}

const isEmpty = (value: unknown) =>
  value == null || (Array.isArray(value) ? value.length === 0 : typeof value === 'object' && Object.keys(value).length === 0);

/** A field of the API that Runway does not serve: accepted empty (absent, null, `{}`, `[]`), refused otherwise. */
const unserved = (why: string) => z.unknown().refine(isEmpty, { message: why }).optional();

const jsonObject = z
  .custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { message: 'must be a JSON object' })
  .pipe(jsonSchemaObjectSchema);

/** Metadata; null is none. */
const metadata = metadataSchema.nullish().transform((m): Metadata | null => m ?? null);

const FILE_TOOLS = 'Runway runs function tools only (no code_interpreter or file_search)';

const tool = z
  .object({
    type: z.literal('function', { error: FILE_TOOLS }),
    function: z.object({
      name: functionNameSchema,
      description: z.string().nullish(),
      parameters: jsonObject.nullish(),
      strict: z.boolean().nullish(),
    }),
  })
  .transform(({ function: f }): Tool => ({
    type: 'function',
    function: {
      name: f.name,
      ...(f.description != null ? { description: f.description } : {}),
      ...(f.parameters != null ? { parameters: f.parameters } : {}),
      ...(f.strict != null ? { strict: f.strict } : {}),
    },
  }));

const tools = z.array(tool).max(LIMITS.tools, TOO_MANY_TOOLS);

const textPart = z.object({
  type: z.literal('text', { error: 'Runway keeps text only (no image_file or image_url)' }),
  text: z.string(),
});

/** A message's content: a string, or text parts (joined by a newline: Runway keeps one text per message). */
const content = z
  .union([z.string(), z.array(textPart).min(1)])
  .transform((c) => (typeof c === 'string' ? c : c.map((part) => part.text).join('\n')))
  .pipe(messageContentSchema);

const message = z
  .strictObject({
    role: z.enum(['user', 'assistant']),
    content,
    attachments: unserved('Runway keeps no attachments (file tools are not served)'),
    metadata,
  })
  .transform(({ role, content, metadata }): CreateMessageInput => ({ role, content, metadata }));

const toolResources = unserved('Runway keeps no tool resources (file tools are not served)');

const thread = z
  .strictObject({ messages: z.array(message).nullish(), tool_resources: toolResources, metadata })
  .transform(({ messages, metadata }): CreateThreadInput => ({ messages, metadata }));

const truncationStrategy = z
  .strictObject({ type: z.enum(['auto', 'last_messages']), last_messages: lastMessagesSchema.nullish() })
  .transform((s): TruncationStrategy => ({ type: s.type, lastMessages: s.last_messages ?? null }))
  .superRefine(obeys(truncationStrategyRule));

const toolChoice = z.union([
  z.enum(['none', 'auto', 'required']).transform((mode): ToolChoice => ({ mode })),
  z
    .object({ type: z.literal('function', { error: FILE_TOOLS }), function: z.object({ name: functionNameSchema }) })
    .transform((c): ToolChoice => ({ function: { name: c.function.name } })),
]);

const jsonSchemaFormat = z.object({
  name: functionNameSchema,
  description: z.string().nullish(),
  schema: jsonObject.nullish(),
  strict: z.boolean().nullish(),
});

const responseFormat = z.union([
  z.literal('auto').transform((): ResponseFormat => ({ type: 'auto' })),
  z
    .object({ type: z.enum(['text', 'json_object', 'json_schema']), json_schema: jsonSchemaFormat.nullish() })
    .transform((f) => ({ type: f.type, jsonSchema: f.json_schema ?? null }))
    .superRefine(obeys(responseFormatRule))
    // The rule has made sure a json_schema format comes with its schema, and only it.
    .transform(({ type, jsonSchema }): ResponseFormat =>
      type === 'json_schema' && jsonSchema
        ? {
            type,
            jsonSchema: {
              name: jsonSchema.name,
              description: jsonSchema.description ?? null,
              schema: jsonSchema.schema ?? null,
              strict: jsonSchema.strict ?? null,
            },
          }
        : { type: type as 'text' | 'json_object' },
    ),
]);

/** `stream: true` asks for the answer as server-sent events. */
const stream = z.boolean().nullish();

/** The options every run takes, created on a thread or with one. */
const runOptions = {
  assistant_id: z.string(),
  model: modelSchema.nullish(),
  reasoning_effort: unserved('Runway passes no reasoning_effort to models'),
  instructions: instructionsSchema.nullish(),
  tools: tools.nullish(),
  metadata,
  temperature: temperatureSchema.nullish(),
  top_p: topPSchema.nullish(),
  stream,
  max_prompt_tokens: tokenLimitSchema.nullish(),
  max_completion_tokens: tokenLimitSchema.nullish(),
  truncation_strategy: truncationStrategy.nullish(),
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: responseFormat.nullish(),
};

type RunOptionsBody = z.output<z.ZodObject<typeof runOptions>>;

function toRunOptions(b: RunOptionsBody): Omit<CreateThreadAndRunInput, 'thread'> {
  return {
    assistantId: b.assistant_id,
    model: b.model,
    instructions: b.instructions,
    tools: b.tools,
    metadata: b.metadata,
    temperature: b.temperature,
    topP: b.top_p,
    maxPromptTokens: b.max_prompt_tokens,
    maxCompletionTokens: b.max_completion_tokens,
    truncationStrategy: b.truncation_strategy,
    toolChoice: b.tool_choice,
    parallelToolCalls: b.parallel_tool_calls,
    responseFormat: b.response_format,
  };
}

// ---- bodies ----

export const createAssistantBody = z
  .strictObject({
    model: modelSchema,
    name: assistantNameSchema.nullish(),
    description: assistantDescriptionSchema.nullish(),
    instructions: instructionsSchema.nullish(),
    reasoning_effort: unserved('Runway passes no reasoning_effort to models'),
    tools: tools.nullish(),
    tool_resources: toolResources,
    metadata,
    temperature: temperatureSchema.nullish(),
    top_p: topPSchema.nullish(),
    response_format: responseFormat.nullish(),
  })
  .transform((b): CreateAssistantInput => ({
    model: b.model,
    name: b.name,
    description: b.description,
    instructions: b.instructions,
    tools: b.tools,
    metadata: b.metadata,
    temperature: b.temperature,
    topP: b.top_p,
    responseFormat: b.response_format,
  }));

/** What a modify may change of an assistant: the fields given, the others as they are. */
export const modifyAssistantBody = z
  .strictObject({
    model: modelSchema.optional(),
    name: assistantNameSchema.nullish(),
    description: assistantDescriptionSchema.nullish(),
    instructions: instructionsSchema.nullish(),
    reasoning_effort: unserved('Runway passes no reasoning_effort to models'),
    tools: tools.optional(),
    tool_resources: toolResources,
    metadata: metadata.optional(),
    temperature: temperatureSchema.nullish(),
    top_p: topPSchema.nullish(),
    response_format: responseFormat.nullish(),
  })
  .transform((b): Partial<CreateAssistantInput> => {
    const { model, name, description, instructions, tools, metadata, temperature, top_p: topP, response_format: responseFormat } = b;
    const given = { model, name, description, instructions, tools, metadata, temperature, topP, responseFormat };
    return Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  });

export const createThreadBody = thread;

/** A thread's or a message's modify: its metadata. */
export const modifyThreadBody = z
  .strictObject({ tool_resources: toolResources, metadata: metadata.optional() })
  .transform(({ metadata }) => ({ metadata }));
export const modifyMessageBody = z.strictObject({ metadata: metadata.optional() }).transform(({ metadata }) => ({ metadata }));

export const createMessageBody = message;

export const createRunBody = z
  .strictObject({
    ...runOptions,
    additional_instructions: instructionsSchema.nullish(),
    additional_messages: z.array(message).nullish(),
  })
  .transform((b): { input: CreateRunInput; stream: boolean } => ({
    input: { ...toRunOptions(b), additionalInstructions: b.additional_instructions, additionalMessages: b.additional_messages },
    stream: b.stream === true,
  }));

export const createThreadAndRunBody = z
  .strictObject({ ...runOptions, thread: thread.nullish(), tool_resources: toolResources })
  .transform((b): { input: CreateThreadAndRunInput; stream: boolean } => ({
    input: { ...toRunOptions(b), thread: b.thread },
    stream: b.stream === true,
  }));

/** A run's modify: its metadata (absent: the run as it is). */
export const modifyRunBody = z.strictObject({ metadata: metadata.optional() }).transform(({ metadata }) => ({ metadata }));

export const submitToolOutputsBody = z
  .strictObject({
    tool_outputs: z.array(z.object({ tool_call_id: z.string(), output: toolOutputSchema })),
    stream,
  })
  .transform((b): { outputs: ToolOutput[]; stream: boolean } => ({
    outputs: b.tool_outputs.map((o) => ({ toolCallId: o.tool_call_id, output: o.output })),
    stream: b.stream === true,
  }));

/** The `Idempotency-Key` header: a retry with the same key gets the first result. */
export const idempotencyKeyHeader = idempotencyKeySchema.optional();

/** The objects a run carries besides its own fields: its error, usage, required action, and the options it was created with. */
import type {
  IncompleteDetails,
  RequiredAction,
  ResponseFormat,
  RunError,
  RunUsage,
  ToolCall,
  ToolChoice,
  TruncationStrategy,
} from '../../domain/run.js';
import { counted, countedJson } from '../answer-budget.js';
import { builder } from '../builder.js';
const RunErrorCode = builder.enumType('RunErrorCode', {
  values: {
    SERVER_ERROR: { value: 'server_error' },
    RATE_LIMIT_EXCEEDED: { value: 'rate_limit_exceeded' },
    INVALID_PROMPT: { value: 'invalid_prompt' },
  } as const,
});

export const RunErrorRef = builder.objectRef<RunError>('RunError').implement({
  fields: (t) => ({
    code: t.field({ type: RunErrorCode, resolve: (e) => e.code }),
    message: t.exposeString('message'),
  }),
});

const IncompleteReason = builder.enumType('IncompleteReason', {
  values: {
    MAX_COMPLETION_TOKENS: { value: 'max_completion_tokens' },
    MAX_PROMPT_TOKENS: { value: 'max_prompt_tokens' },
  } as const,
});

export const IncompleteDetailsRef = builder.objectRef<IncompleteDetails>('IncompleteDetails').implement({
  fields: (t) => ({ reason: t.field({ type: IncompleteReason, resolve: (d) => d.reason }) }),
});

export const RunUsageRef = builder.objectRef<RunUsage>('RunUsage').implement({
  fields: (t) => ({
    promptTokens: t.exposeInt('promptTokens'),
    completionTokens: t.exposeInt('completionTokens'),
    totalTokens: t.exposeInt('totalTokens'),
  }),
});

const ToolCallFunction = builder.objectRef<ToolCall['function']>('ToolCallFunction').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    arguments: t.string({ description: 'The arguments as a JSON string.', resolve: (f, _, ctx) => counted(ctx, f.arguments) }),
  }),
});

export const ToolCallRef = builder.objectRef<ToolCall>('ToolCall').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    type: t.exposeString('type'),
    function: t.field({ type: ToolCallFunction, resolve: (c) => c.function }),
  }),
});

const SubmitToolOutputs = builder.objectRef<RequiredAction['submitToolOutputs']>('SubmitToolOutputs').implement({
  fields: (t) => ({ toolCalls: t.field({ type: [ToolCallRef], resolve: (s) => s.toolCalls }) }),
});

export const RequiredActionRef = builder.objectRef<RequiredAction>('RequiredAction').implement({
  fields: (t) => ({
    type: t.exposeString('type'),
    submitToolOutputs: t.field({ type: SubmitToolOutputs, resolve: (a) => a.submitToolOutputs }),
  }),
});

export const TruncationType = builder.enumType('TruncationType', {
  values: { AUTO: { value: 'auto' }, LAST_MESSAGES: { value: 'last_messages' } } as const,
});

export const TruncationStrategyRef = builder.objectRef<TruncationStrategy>('TruncationStrategy').implement({
  fields: (t) => ({
    type: t.field({ type: TruncationType, resolve: (s) => s.type }),
    lastMessages: t.int({ nullable: true, resolve: (s) => s.lastMessages ?? null }),
  }),
});

export const ToolChoiceMode = builder.enumType('ToolChoiceMode', {
  values: { NONE: { value: 'none' }, AUTO: { value: 'auto' }, REQUIRED: { value: 'required' } } as const,
});

const FunctionName = builder.objectRef<{ name: string }>('FunctionName').implement({
  fields: (t) => ({ name: t.exposeString('name') }),
});

export const ToolChoiceRef = builder.objectRef<ToolChoice>('ToolChoice').implement({
  description: 'Either a mode, or the one function the model must call.',
  fields: (t) => ({
    mode: t.field({ type: ToolChoiceMode, nullable: true, resolve: (c) => ('mode' in c ? c.mode : null) }),
    function: t.field({ type: FunctionName, nullable: true, resolve: (c) => ('function' in c ? c.function : null) }),
  }),
});

export const ResponseFormatType = builder.enumType('ResponseFormatType', {
  values: {
    AUTO: { value: 'auto' },
    TEXT: { value: 'text' },
    JSON_OBJECT: { value: 'json_object' },
    JSON_SCHEMA: { value: 'json_schema' },
  } as const,
});

type JsonSchemaFormat = Extract<ResponseFormat, { type: 'json_schema' }>['jsonSchema'];
const JsonSchemaFormatRef = builder.objectRef<JsonSchemaFormat>('JsonSchemaFormat').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.string({ nullable: true, resolve: (f, _, ctx) => counted(ctx, f.description ?? null) }),
    schema: t.field({ type: 'JSONObject', nullable: true, resolve: (f, _, ctx) => countedJson(ctx, f.schema ?? null) }),
    strict: t.boolean({ nullable: true, resolve: (f) => f.strict ?? null }),
  }),
});

export const ResponseFormatRef = builder.objectRef<ResponseFormat>('ResponseFormat').implement({
  fields: (t) => ({
    type: t.field({ type: ResponseFormatType, resolve: (f) => f.type }),
    jsonSchema: t.field({
      type: JsonSchemaFormatRef,
      nullable: true,
      resolve: (f) => (f.type === 'json_schema' ? f.jsonSchema : null),
    }),
  }),
});

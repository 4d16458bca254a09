/** The Run type, its inputs, and the run queries and mutations (the objects it carries: run-parts.ts). */
import type { InputFieldBuilder, InputShapeFromFields } from '@pothos/core';
import type { RunRow } from '../../db/schema.js';
import type { ResponseFormat, ToolChoice } from '../../domain/run.js';
import { RUN_STATUSES, type RunStatus } from '../../domain/run-lifecycle.js';
import type { CreateRunInput as CreateRunUseCase, CreateThreadAndRunInput } from '../../runs/index.js';
import { checkAnswerBudget, counted, countedJson } from '../answer-budget.js';
import { builder } from '../builder.js';
import { enumName } from '../enum-names.js';
import {
  functionNameSchema,
  instructionsSchema,
  JSON_SCHEMA_LIMITS,
  jsonSchemaObjectSchema,
  lastMessagesSchema,
  messageContentSchema,
  metadataSchema,
  refineOptions,
  responseFormatRule,
  temperatureSchema,
  tokenLimitSchema,
  toolOutputSchema,
  topPSchema,
  truncationStrategyRule,
} from '../../domain/input-rules.js';
import { inOrderOf } from '../global-ids.js';
import { idempotencyKeyArgs, metadataArg, orderArg, ToolInput, ToolRef, toolsArgValidation, toTools } from './common.js';
import { MessageRole } from './message.js';
import {
  IncompleteDetailsRef,
  RequiredActionRef,
  ResponseFormatRef,
  ResponseFormatType,
  RunErrorRef,
  RunUsageRef,
  ToolChoiceMode,
  ToolChoiceRef,
  TruncationStrategyRef,
  TruncationType,
} from './run-parts.js';

export const RunStatusEnum = builder.enumType('RunStatus', {
  description: 'The nine statuses of a run; see the run lifecycle in docs/architecture.md.',
  values: Object.fromEntries(RUN_STATUSES.map((s) => [enumName(s), { value: s }])) as {
    [K in RunStatus as Uppercase<K>]: { value: K };
  },
});

export const RunRef = builder.node(builder.objectRef<RunRow>('Run'), {
  description: "An execution run on a thread: the Assistants API's run object, camelCased.",
  id: { resolve: (r) => r.id },
  loadMany: async (ids, ctx) => inOrderOf(ids, await ctx.runs.manyInProject(ctx.projectId, ids)),
  fields: (t) => ({
    object: t.string({ resolve: () => 'thread.run' }),
    createdAt: t.expose('createdAt', { type: 'UnixTime' }),
    threadId: t.exposeID('threadId'),
    assistantId: t.exposeID('assistantId'),
    status: t.field({ type: RunStatusEnum, resolve: (r) => r.status }),
    requiredAction: t.field({ type: RequiredActionRef, nullable: true, resolve: (r) => r.requiredAction }),
    lastError: t.field({ type: RunErrorRef, nullable: true, resolve: (r) => r.lastError }),
    expiresAt: t.expose('expiresAt', { type: 'UnixTime', nullable: true }),
    startedAt: t.expose('startedAt', { type: 'UnixTime', nullable: true }),
    cancelledAt: t.expose('cancelledAt', { type: 'UnixTime', nullable: true }),
    failedAt: t.expose('failedAt', { type: 'UnixTime', nullable: true }),
    completedAt: t.expose('completedAt', { type: 'UnixTime', nullable: true }),
    incompleteDetails: t.field({ type: IncompleteDetailsRef, nullable: true, resolve: (r) => r.incompleteDetails }),
    model: t.string({ resolve: (r, _, ctx) => counted(ctx, r.model) }),
    instructions: t.string({ resolve: (r, _, ctx) => counted(ctx, r.instructions) }),
    additionalInstructions: t.string({ nullable: true, resolve: (r, _, ctx) => counted(ctx, r.additionalInstructions) }),
    tools: t.field({ type: [ToolRef], resolve: (r) => r.tools }),
    metadata: t.field({ type: 'Metadata', resolve: (r, _, ctx) => countedJson(ctx, r.metadata) }),
    usage: t.field({
      type: RunUsageRef,
      nullable: true,
      description: 'Null until the run is terminal.',
      resolve: (r) => r.usage,
    }),
    temperature: t.exposeFloat('temperature', { nullable: true }),
    topP: t.exposeFloat('topP', { nullable: true }),
    maxPromptTokens: t.exposeInt('maxPromptTokens', { nullable: true }),
    maxCompletionTokens: t.exposeInt('maxCompletionTokens', { nullable: true }),
    truncationStrategy: t.field({ type: TruncationStrategyRef, nullable: true, resolve: (r) => r.truncationStrategy }),
    toolChoice: t.field({ type: ToolChoiceRef, nullable: true, resolve: (r) => r.toolChoice }),
    parallelToolCalls: t.exposeBoolean('parallelToolCalls'),
    responseFormat: t.field({ type: ResponseFormatRef, nullable: true, resolve: (r) => r.responseFormat }),
    version: t.exposeInt('version', { description: '1 at creation, +1 on every status change.' }),
  }),
});

export const RunConnection = builder.connectionObject({ type: RunRef, name: 'RunConnection' });

/** The arguments of a run list besides the Relay ones, shared by Query.runs and Thread.runs. */
export const runListArgs = builder.args((t) => ({
  ...orderArg('desc'),
  status: t.field({ type: [RunStatusEnum], description: 'Only runs in one of these statuses.' }),
}));

// ---- inputs ----

const TruncationStrategyInput = builder.inputType('TruncationStrategyInput', {
  fields: (t) => ({
    type: t.field({ type: TruncationType, required: true }),
    lastMessages: t.int({ validate: { schema: lastMessagesSchema } }),
  }),
  validate: [(s) => truncationStrategyRule.holds(s), refineOptions(truncationStrategyRule)],
});

const ToolChoiceFunctionInput = builder.inputType('ToolChoiceFunctionInput', {
  fields: (t) => ({ name: t.string({ required: true, validate: { schema: functionNameSchema } }) }),
});

const ToolChoiceInput = builder.inputType('ToolChoiceInput', {
  description: 'Exactly one of: a mode, or a function the model must call.',
  isOneOf: true,
  fields: (t) => ({
    mode: t.field({ type: ToolChoiceMode }),
    function: t.field({ type: ToolChoiceFunctionInput }),
  }),
});

const JsonSchemaFormatInput = builder.inputType('JsonSchemaFormatInput', {
  fields: (t) => ({
    name: t.string({ required: true, validate: { schema: functionNameSchema } }),
    description: t.string(),
    schema: t.field({
      type: 'JSONObject',
      description: `A JSON Schema object, ${JSON_SCHEMA_LIMITS}.`,
      validate: { schema: jsonSchemaObjectSchema },
    }),
    strict: t.boolean(),
  }),
});

export const ResponseFormatInput = builder.inputType('ResponseFormatInput', {
  fields: (t) => ({
    type: t.field({ type: ResponseFormatType, required: true }),
    jsonSchema: t.field({ type: JsonSchemaFormatInput, description: 'Required for JSON_SCHEMA, else not allowed.' }),
  }),
  validate: [(f) => responseFormatRule.holds(f), refineOptions(responseFormatRule)],
});

export const AdditionalMessageInput = builder.inputType('AdditionalMessageInput', {
  fields: (t) => ({
    role: t.field({ type: MessageRole, required: true }),
    content: t.string({ required: true, validate: { schema: messageContentSchema } }),
    metadata: t.field({ type: 'Metadata', validate: metadataArg }),
  }),
});

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

/**
 * The run's options, as createRun and createThreadAndRun take them: one definition, so
 * both validate alike.
 */
export const runOptionFields = (t: InputFieldBuilder<Types, 'InputObject'>) => ({
  assistantId: t.id({ required: true }),
  model: t.string({ description: "Overrides the assistant's model." }),
  instructions: t.string({ description: "Overrides the assistant's instructions.", validate: { schema: instructionsSchema } }),
  tools: t.field({ type: [ToolInput], validate: toolsArgValidation, description: "Overrides the assistant's tools." }),
  metadata: t.field({ type: 'Metadata', validate: metadataArg }),
  temperature: t.float({ validate: { schema: temperatureSchema } }),
  topP: t.float({ validate: { schema: topPSchema } }),
  maxPromptTokens: t.int({ validate: { schema: tokenLimitSchema } }),
  maxCompletionTokens: t.int({ validate: { schema: tokenLimitSchema } }),
  truncationStrategy: t.field({ type: TruncationStrategyInput }),
  toolChoice: t.field({ type: ToolChoiceInput }),
  parallelToolCalls: t.boolean(),
  responseFormat: t.field({ type: ResponseFormatInput }),
});

const CreateRunInput = builder.inputType('CreateRunInput', {
  fields: (t) => ({
    ...runOptionFields(t),
    additionalInstructions: t.string({
      description: 'Appended to the instructions for this run only.',
      validate: { schema: instructionsSchema },
    }),
    additionalMessages: t.field({
      type: [AdditionalMessageInput],
      description: 'Added to the thread before the run is created.',
    }),
  }),
});

const ToolOutputInput = builder.inputType('ToolOutputInput', {
  fields: (t) => ({
    toolCallId: t.id({ required: true }),
    output: t.string({ required: true, validate: { schema: toolOutputSchema } }),
  }),
});

// ---- queries and mutations ----

builder.queryFields((t) => ({
  run: t.field({
    type: RunRef,
    nullable: true,
    description: 'The run, or null when the thread has no such run.',
    args: { threadId: t.arg.id({ required: true }), runId: t.arg.id({ required: true }) },
    resolve: (_, { threadId, runId }, ctx) => ctx.runs.get(ctx.projectId, String(threadId), String(runId)),
  }),
  runs: t.connection(
    {
      type: RunRef,
      description: "A page of the thread's runs, newest first unless order is ASC.",
      args: { threadId: t.arg.id({ required: true }), ...runListArgs },
      resolve: (_, args, ctx) => (checkAnswerBudget(ctx), ctx.runs.list(ctx.projectId, String(args.threadId), args, args.status)),
    },
    RunConnection,
  ),
}));

builder.mutationFields((t) => ({
  createRun: t.field({
    type: RunRef,
    args: {
      threadId: t.arg.id({ required: true }),
      input: t.arg({ type: CreateRunInput, required: true }),
      ...idempotencyKeyArgs,
    },
    resolve: (_, { threadId, input, idempotencyKey }, ctx) =>
      ctx.runs.create(ctx.projectId, String(threadId), toCreateRun(input), idempotencyKey),
  }),
  modifyRun: t.field({
    type: RunRef,
    description: "Replaces the run's metadata; allowed in every status.",
    args: {
      threadId: t.arg.id({ required: true }),
      runId: t.arg.id({ required: true }),
      metadata: t.arg({ type: 'Metadata', required: true, validate: { schema: metadataSchema } }),
    },
    resolve: (_, { threadId, runId, metadata }, ctx) =>
      ctx.runs.modify(ctx.projectId, String(threadId), String(runId), metadata as Record<string, string>),
  }),
  cancelRun: t.field({
    type: RunRef,
    args: { threadId: t.arg.id({ required: true }), runId: t.arg.id({ required: true }) },
    resolve: (_, { threadId, runId }, ctx) => ctx.runs.cancel(ctx.projectId, String(threadId), String(runId)),
  }),
  submitToolOutputs: t.field({
    type: RunRef,
    args: {
      threadId: t.arg.id({ required: true }),
      runId: t.arg.id({ required: true }),
      toolOutputs: t.arg({ type: [ToolOutputInput], required: true }),
      ...idempotencyKeyArgs,
    },
    resolve: (_, { threadId, runId, toolOutputs, idempotencyKey }, ctx) =>
      ctx.runs.submitToolOutputs(
        ctx.projectId,
        String(threadId),
        String(runId),
        toolOutputs.map((o) => ({ toolCallId: String(o.toolCallId), output: o.output })),
        idempotencyKey,
      ),
  }),
}));

type CreateRunArgs = typeof CreateRunInput.$inferInput;
/** The run's options as a GraphQL input carries them (see runOptionFields). */
export type RunOptionArgs = InputShapeFromFields<ReturnType<typeof runOptionFields>>;
/** ... and as the use cases take them (createThreadAndRun's input, its thread aside). */
type RunOptions = Omit<CreateThreadAndRunInput, 'thread'>;

function toCreateRun(input: CreateRunArgs): CreateRunUseCase {
  return {
    ...toRunOptions(input),
    additionalInstructions: input.additionalInstructions,
    additionalMessages: input.additionalMessages?.map((m) => ({
      role: m.role,
      content: m.content,
      metadata: m.metadata as Record<string, string> | null | undefined,
    })),
  };
}

/** The run's options for the use cases, GraphQL's enums and explicit nulls translated. */
export function toRunOptions(input: RunOptionArgs): RunOptions {
  const tools = toTools(input.tools);
  const choice = input.toolChoice;
  let toolChoice: ToolChoice | null = null;
  if (choice?.mode) toolChoice = { mode: choice.mode };
  else if (choice?.function) toolChoice = { function: { name: choice.function.name } };
  return {
    assistantId: String(input.assistantId),
    model: input.model,
    instructions: input.instructions,
    tools,
    metadata: input.metadata as Record<string, string> | null | undefined,
    temperature: input.temperature,
    topP: input.topP,
    maxPromptTokens: input.maxPromptTokens,
    maxCompletionTokens: input.maxCompletionTokens,
    truncationStrategy: input.truncationStrategy
      ? { type: input.truncationStrategy.type, lastMessages: input.truncationStrategy.lastMessages ?? null }
      : null,
    toolChoice,
    parallelToolCalls: input.parallelToolCalls,
    responseFormat: toResponseFormat(input.responseFormat),
  };
}

/** A ResponseFormatInput as the use cases take it (absent or null: null). */
export function toResponseFormat(format: RunOptionArgs['responseFormat']): ResponseFormat | null {
  if (!format) return null;
  return format.type === 'json_schema' && format.jsonSchema
    ? {
        type: 'json_schema',
        jsonSchema: {
          name: format.jsonSchema.name,
          description: format.jsonSchema.description ?? null,
          schema: format.jsonSchema.schema ?? null,
          strict: format.jsonSchema.strict ?? null,
        },
      }
    : { type: format.type as 'auto' | 'text' | 'json_object' };
}

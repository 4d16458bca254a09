import type { AssistantRow } from '../../db/schema.js';
import { checkAnswerBudget, counted, countedJson } from '../answer-budget.js';
import { builder } from '../builder.js';
import { inOrderOf } from '../global-ids.js';
import {
  assistantDescriptionSchema,
  assistantNameSchema,
  instructionsSchema,
  modelSchema,
  temperatureSchema,
  topPSchema,
} from '../../domain/input-rules.js';
import { DeletionRef, idempotencyKeyArgs, metadataArg, orderArg, ToolInput, ToolRef, toolsArgValidation, toTools } from './common.js';
import { ResponseFormatInput, toResponseFormat } from './run.js';
import { ResponseFormatRef } from './run-parts.js';

export const AssistantRef = builder.node(builder.objectRef<AssistantRow>('Assistant'), {
  id: { resolve: (a) => a.id },
  // Read as they are now (another process may have modified them): one statement for all.
  loadMany: async (ids, ctx) => inOrderOf(ids, await ctx.assistants.manyInProject(ctx.projectId, ids)),
  fields: (t) => ({
    object: t.string({ resolve: () => 'assistant' }),
    createdAt: t.expose('createdAt', { type: 'UnixTime' }),
    model: t.string({ resolve: (a, _, ctx) => counted(ctx, a.model) }),
    name: t.string({ nullable: true, resolve: (a, _, ctx) => counted(ctx, a.name) }),
    description: t.string({ nullable: true, resolve: (a, _, ctx) => counted(ctx, a.description) }),
    instructions: t.string({ nullable: true, resolve: (a, _, ctx) => counted(ctx, a.instructions) }),
    tools: t.field({ type: [ToolRef], resolve: (a) => a.tools }),
    metadata: t.field({ type: 'Metadata', resolve: (a, _, ctx) => countedJson(ctx, a.metadata) }),
    temperature: t.exposeFloat('temperature', { description: 'What its runs take unless they set their own (default 1).' }),
    topP: t.exposeFloat('topP', { description: 'What its runs take unless they set their own (default 1).' }),
    responseFormat: t.field({
      type: ResponseFormatRef,
      description: 'What its runs take unless they set their own (default AUTO).',
      resolve: (a) => a.responseFormat,
    }),
  }),
});

const AssistantConnection = builder.connectionObject({ type: AssistantRef, name: 'AssistantConnection' });

const CreateAssistantInput = builder.inputType('CreateAssistantInput', {
  fields: (t) => ({
    model: t.string({ required: true, validate: { schema: modelSchema } }),
    name: t.string({ validate: { schema: assistantNameSchema } }),
    description: t.string({ validate: { schema: assistantDescriptionSchema } }),
    instructions: t.string({ validate: { schema: instructionsSchema } }),
    tools: t.field({ type: [ToolInput], validate: toolsArgValidation }),
    metadata: t.field({ type: 'Metadata', validate: metadataArg }),
    temperature: t.float({ validate: { schema: temperatureSchema }, description: "The runs' default (1 when left out)." }),
    topP: t.float({ validate: { schema: topPSchema }, description: "The runs' default (1 when left out)." }),
    responseFormat: t.field({ type: ResponseFormatInput, description: "The runs' default (AUTO when left out)." }),
  }),
});

const ModifyAssistantInput = builder.inputType('ModifyAssistantInput', {
  description:
    "The fields to change, validated as createAssistant's: a field left out stays as it is; null clears name, description and instructions, and leaves no tools or no metadata. metadata replaces the old metadata whole.",
  fields: (t) => ({
    model: t.string({ validate: { schema: modelSchema } }),
    name: t.string({ validate: { schema: assistantNameSchema } }),
    description: t.string({ validate: { schema: assistantDescriptionSchema } }),
    instructions: t.string({ validate: { schema: instructionsSchema } }),
    tools: t.field({ type: [ToolInput], validate: toolsArgValidation }),
    metadata: t.field({ type: 'Metadata', validate: metadataArg }),
    temperature: t.float({ validate: { schema: temperatureSchema }, description: 'null: back to 1.' }),
    topP: t.float({ validate: { schema: topPSchema }, description: 'null: back to 1.' }),
    responseFormat: t.field({ type: ResponseFormatInput, description: 'null: back to AUTO.' }),
  }),
  // An assistant always has a model: null is no change the input could mean.
  validate: [(input) => input.model !== null, { message: 'must not be null (leave it out to keep the model)', path: ['model'] }],
});

builder.queryFields((t) => ({
  assistant: t.field({
    type: AssistantRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => ctx.assistants.get(ctx.projectId, String(id)),
  }),
  assistants: t.connection(
    {
      type: AssistantRef,
      description: "A page of your project's assistants, newest first unless order is ASC.",
      args: orderArg('desc'),
      resolve: (_, args, ctx) => (checkAnswerBudget(ctx), ctx.assistants.page(ctx.projectId, args)),
    },
    AssistantConnection,
  ),
}));

builder.mutationFields((t) => ({
  createAssistant: t.field({
    type: AssistantRef,
    args: { input: t.arg({ type: CreateAssistantInput, required: true }), ...idempotencyKeyArgs },
    resolve: (_, { input, idempotencyKey }, ctx) =>
      ctx.assistants.create(
        ctx.projectId,
        {
          model: input.model,
          name: input.name,
          description: input.description,
          instructions: input.instructions,
          tools: toTools(input.tools),
          metadata: input.metadata as Record<string, string> | null | undefined,
          temperature: input.temperature,
          topP: input.topP,
          responseFormat: toResponseFormat(input.responseFormat),
        },
        idempotencyKey,
      ),
  }),
  modifyAssistant: t.field({
    type: AssistantRef,
    description: 'Changes the fields given; runs made before keep what they were made with.',
    args: { assistantId: t.arg.id({ required: true }), input: t.arg({ type: ModifyAssistantInput, required: true }) },
    resolve: (_, { assistantId, input }, ctx) =>
      ctx.assistants.modify(ctx.projectId, String(assistantId), {
        model: input.model ?? undefined,
        name: input.name,
        description: input.description,
        instructions: input.instructions,
        tools: input.tools === undefined ? undefined : toTools(input.tools),
        metadata: input.metadata as Record<string, string> | null | undefined,
        temperature: input.temperature,
        topP: input.topP,
        responseFormat: input.responseFormat === undefined ? undefined : toResponseFormat(input.responseFormat),
      }),
  }),
  deleteAssistant: t.field({
    type: DeletionRef,
    description: 'Deletes the assistant. Its runs, and the threads they ran on, stay and keep working, with its id as their assistantId.',
    args: { assistantId: t.arg.id({ required: true }) },
    resolve: (_, { assistantId }, ctx) => ctx.assistants.delete(ctx.projectId, String(assistantId)),
  }),
}));

import type { AssistantRow } from '../../db/schema.js';
import { counted, countedJson } from '../answer-budget.js';
import { builder } from '../builder.js';
import { assistantDescriptionSchema, assistantNameSchema, instructionsSchema, modelSchema } from '../../domain/input-rules.js';
import { idempotencyKeyArgs, metadataArg, ToolInput, ToolRef, toolsArgValidation, toTools } from './common.js';

export const AssistantRef = builder.node(builder.objectRef<AssistantRow>('Assistant'), {
  id: { resolve: (a) => a.id },
  // Assistants never change: each is read once per process (see findAssistant), one statement at most.
  loadOne: (id, ctx) => ctx.assistants.get(ctx.projectId, id),
  fields: (t) => ({
    object: t.string({ resolve: () => 'assistant' }),
    createdAt: t.exposeInt('createdAt'),
    model: t.string({ resolve: (a, _, ctx) => counted(ctx, a.model) }),
    name: t.string({ nullable: true, resolve: (a, _, ctx) => counted(ctx, a.name) }),
    description: t.string({ nullable: true, resolve: (a, _, ctx) => counted(ctx, a.description) }),
    instructions: t.string({ nullable: true, resolve: (a, _, ctx) => counted(ctx, a.instructions) }),
    tools: t.field({ type: [ToolRef], resolve: (a) => a.tools }),
    metadata: t.field({ type: 'JSONObject', resolve: (a, _, ctx) => countedJson(ctx, a.metadata) }),
  }),
});

const CreateAssistantInput = builder.inputType('CreateAssistantInput', {
  fields: (t) => ({
    model: t.string({ required: true, validate: { schema: modelSchema } }),
    name: t.string({ validate: { schema: assistantNameSchema } }),
    description: t.string({ validate: { schema: assistantDescriptionSchema } }),
    instructions: t.string({ validate: { schema: instructionsSchema } }),
    tools: t.field({ type: [ToolInput], validate: toolsArgValidation }),
    metadata: t.field({ type: 'JSONObject', validate: metadataArg }),
  }),
});

builder.queryFields((t) => ({
  assistant: t.field({
    type: AssistantRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => ctx.assistants.get(ctx.projectId, String(id)),
  }),
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
        },
        idempotencyKey,
      ),
  }),
}));

import type { AssistantRow } from '../../db/schema.js';
import { builder } from '../builder.js';
import { instructionsSchema } from '../validation.js';
import { metadataArg, ToolInput, ToolRef, toolsArgValidation, toTools } from './common.js';

export const AssistantRef = builder.objectRef<AssistantRow>('Assistant').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    object: t.string({ resolve: () => 'assistant' }),
    createdAt: t.exposeInt('createdAt'),
    model: t.exposeString('model'),
    name: t.exposeString('name', { nullable: true }),
    description: t.exposeString('description', { nullable: true }),
    instructions: t.exposeString('instructions', { nullable: true }),
    tools: t.field({ type: [ToolRef], resolve: (a) => a.tools }),
    metadata: t.field({ type: 'JSONObject', resolve: (a) => a.metadata }),
  }),
});

const CreateAssistantInput = builder.inputType('CreateAssistantInput', {
  fields: (t) => ({
    model: t.string({ required: true, validate: { minLength: [1, { message: 'must not be empty' }] } }),
    name: t.string({ validate: { maxLength: 256 } }),
    description: t.string({ validate: { maxLength: 512 } }),
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
    args: { input: t.arg({ type: CreateAssistantInput, required: true }) },
    resolve: (_, { input }, ctx) =>
      ctx.assistants.create(ctx.projectId, {
        model: input.model,
        name: input.name,
        description: input.description,
        instructions: input.instructions,
        tools: toTools(input.tools),
        metadata: input.metadata as Record<string, string> | null | undefined,
      }),
  }),
}));

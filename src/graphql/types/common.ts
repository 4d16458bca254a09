/** Shared GraphQL types: sort order, tools, the run's option objects and the deletion status. */
import type { Deletion } from '../../domain/deletion.js';
import type { FunctionDefinition, Tool } from '../../domain/run.js';
import { counted, countedJson } from '../answer-budget.js';
import { builder } from '../builder.js';
import {
  functionNameSchema,
  idempotencyKeySchema,
  JSON_SCHEMA_LIMITS,
  jsonSchemaObjectSchema,
  LIMITS,
  metadataSchema,
  TOO_MANY_TOOLS,
} from '../../domain/input-rules.js';

export const SortOrder = builder.enumType('SortOrder', {
  values: { ASC: { value: 'asc' }, DESC: { value: 'desc' } } as const,
});

/**
 * A list's sort order, with its default. The Relay arguments (first, after, last, before)
 * come with each connection field (the builder checks their page sizes).
 */
export const orderArg = (defaultValue: 'asc' | 'desc') => builder.args((t) => ({ order: t.field({ type: SortOrder, defaultValue }) }));

export const metadataArg = { schema: metadataSchema } as const;

/** The optional key that makes a creating mutation safe to retry. */
export const idempotencyKeyArgs = builder.args((t) => ({
  idempotencyKey: t.string({
    validate: { schema: idempotencyKeySchema },
    description:
      'Makes a retry safe: a request with a key this project used in the last 24 hours gets the first result and creates nothing; the same key with other input is BAD_USER_INPUT.',
  }),
}));

export const ToolType = builder.enumType('ToolType', {
  values: { FUNCTION: { value: 'function' } } as const,
});

const FunctionDefinitionRef = builder.objectRef<FunctionDefinition>('FunctionDefinition').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.string({ nullable: true, resolve: (f, _, ctx) => counted(ctx, f.description ?? null) }),
    parameters: t.field({ type: 'JSONObject', nullable: true, resolve: (f, _, ctx) => countedJson(ctx, f.parameters ?? null) }),
    strict: t.boolean({ nullable: true, resolve: (f) => f.strict ?? null }),
  }),
});

export const ToolRef = builder.objectRef<Tool>('Tool').implement({
  fields: (t) => ({
    type: t.field({ type: ToolType, resolve: (tool) => tool.type }),
    function: t.field({ type: FunctionDefinitionRef, resolve: (tool) => tool.function }),
  }),
});

const FunctionDefinitionInput = builder.inputType('FunctionDefinitionInput', {
  fields: (t) => ({
    name: t.string({ required: true, validate: { schema: functionNameSchema } }),
    description: t.string(),
    parameters: t.field({
      type: 'JSONObject',
      description: `A JSON Schema object for the arguments, ${JSON_SCHEMA_LIMITS}.`,
      validate: { schema: jsonSchemaObjectSchema },
    }),
    strict: t.boolean(),
  }),
});

export const ToolInput = builder.inputType('ToolInput', {
  fields: (t) => ({
    type: t.field({ type: ToolType, required: true }),
    function: t.field({ type: FunctionDefinitionInput, required: true }),
  }),
});

export const toolsArgValidation = {
  maxLength: [LIMITS.tools, { message: TOO_MANY_TOOLS }] as [number, { message: string }],
};

/** Drops GraphQL's explicit nulls so stored tools hold only what was given. */
export function toTools(
  tools:
    | readonly {
        type: 'function';
        function: { name: string; description?: string | null; parameters?: Record<string, unknown> | null; strict?: boolean | null };
      }[]
    | null
    | undefined,
): Tool[] | null {
  if (!tools) return null;
  return tools.map((tool) => ({
    type: 'function',
    function: {
      name: tool.function.name,
      ...(tool.function.description != null ? { description: tool.function.description } : {}),
      ...(tool.function.parameters != null ? { parameters: tool.function.parameters } : {}),
      ...(tool.function.strict != null ? { strict: tool.function.strict } : {}),
    },
  }));
}

/** What the delete mutations answer: the Assistants API's deletion status. */
export const DeletionRef = builder.objectRef<Deletion>('Deletion').implement({
  description: "A delete's answer, as the Assistants API's deletion status: the id deleted, and `deleted: true`.",
  fields: (t) => ({
    id: t.exposeID('id'),
    object: t.exposeString('object', { description: '`assistant.deleted`, `thread.deleted` or `thread.message.deleted`.' }),
    deleted: t.exposeBoolean('deleted'),
  }),
});

/** Shared GraphQL types: pagination, sort order, tools and the run's option objects. */
import type { ObjectRef } from '@pothos/core';
import type { Page } from '../../db/keyset.js';
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
  pageSizeSchema,
} from '../validation.js';

export const SortOrder = builder.enumType('SortOrder', {
  values: { ASC: { value: 'asc' }, DESC: { value: 'desc' } } as const,
});

export const PageInfo = builder.objectRef<{
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  startCursor: string | null;
  endCursor: string | null;
}>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    hasPreviousPage: t.exposeBoolean('hasPreviousPage'),
    startCursor: t.exposeString('startCursor', { nullable: true }),
    endCursor: t.exposeString('endCursor', { nullable: true }),
  }),
});

/** A Relay connection type (`XConnection` with `XEdge`) over a page of nodes. */
export function connectionType<T extends { id: string }>(name: string, node: ObjectRef<any, T>) {
  const Edge = builder.objectRef<{ cursor: string; node: T }>(`${name}Edge`).implement({
    fields: (t) => ({
      cursor: t.exposeString('cursor'),
      node: t.field({ type: node, resolve: (e) => e.node as never }),
    }),
  });
  return builder.objectRef<Page<T>>(`${name}Connection`).implement({
    fields: (t) => ({
      edges: t.field({
        type: [Edge],
        resolve: (p) => p.nodes.map((n, i) => ({ node: n, cursor: p.cursors[i]! })),
      }),
      nodes: t.field({ type: [node], resolve: (p) => p.nodes as never }),
      pageInfo: t.field({
        type: PageInfo,
        resolve: (p) => ({
          hasNextPage: p.hasNextPage,
          hasPreviousPage: p.hasPreviousPage,
          startCursor: p.cursors[0] ?? null,
          endCursor: p.cursors.at(-1) ?? null,
        }),
      }),
    }),
  });
}

/** The four Relay arguments, with page sizes checked, and the sort order. */
export const pageArgs = builder.args((t) => ({
  first: t.int({ validate: { schema: pageSizeSchema } }),
  after: t.string(),
  last: t.int({ validate: { schema: pageSizeSchema } }),
  before: t.string(),
  order: t.field({ type: SortOrder, defaultValue: 'desc' }),
}));

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
  maxLength: [LIMITS.tools, { message: `at most ${LIMITS.tools} tools` }] as [number, { message: string }],
};

/** Drops GraphQL's explicit nulls so stored tools hold only what was given. */
export function toTools(
  tools: readonly { type: 'function'; function: { name: string; description?: string | null; parameters?: Record<string, unknown> | null; strict?: boolean | null } }[] | null | undefined,
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

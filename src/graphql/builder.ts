import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import RelayPlugin from '@pothos/plugin-relay';
import ZodPlugin from '@pothos/plugin-zod';
import { JSONObjectResolver } from 'graphql-scalars';
import type { GraphQLContext } from './context.js';
import { validationError } from './errors.js';
import { decodeGlobalID, encodeGlobalID, nodeTypeOf } from './global-ids.js';
import { pageSizeSchema } from '../domain/input-rules.js';

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  // Fields are non-null unless they say otherwise: the contract's `!`s are the norm.
  DefaultFieldNullability: false;
  Scalars: {
    JSONObject: { Input: Record<string, unknown>; Output: Record<string, unknown> };
  };
}>({
  plugins: [RelayPlugin, DataloaderPlugin, ZodPlugin],
  defaultFieldNullability: false,
  zod: { validationError: (error) => validationError(error) },
  relay: {
    // Ids are global already: `id` values stay as they are, and name their type (see global-ids.ts).
    encodeGlobalID,
    decodeGlobalID,
    nodeTypeOptions: { resolveType: (node) => nodeTypeOf((node as { id: string }).id) },
    // The type comes from the id: loaded rows need no brand.
    brandLoadedObjects: false,
    // Query.node and Query.nodes are defined in types/node.ts: an id that names no node reads null.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    nodesOnConnection: true,
    firstArgOptions: { validate: { schema: pageSizeSchema } },
    lastArgOptions: { validate: { schema: pageSizeSchema } },
  },
});

// graphql-scalars' JSONObject rejects arrays and primitives where an object is expected.
builder.addScalarType('JSONObject', JSONObjectResolver);

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

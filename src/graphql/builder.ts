import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import RelayPlugin from '@pothos/plugin-relay';
import ZodPlugin from '@pothos/plugin-zod';
import { JSONObjectResolver, SafeIntResolver } from 'graphql-scalars';
import type { GraphQLContext } from './context.js';
import { validationError } from './errors.js';
import { decodeGlobalID, encodeGlobalID, nodeTypeOf } from './global-ids.js';
import { LIMITS, pageSizeSchema } from '../domain/input-rules.js';

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  // Fields are non-null unless they say otherwise: the contract's `!`s are the norm.
  DefaultFieldNullability: false;
  Scalars: {
    JSONObject: { Input: Record<string, unknown>; Output: Record<string, unknown> };
    UnixTime: { Input: number; Output: number };
    // Checked against the rules by each argument's zod schema (metadataSchema), as before.
    Metadata: { Input: Record<string, unknown>; Output: Record<string, unknown> };
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

// Timestamps outlive 32 bits: GraphQL's Int ends on 2038-01-19. graphql-scalars' SafeInt
// has the right rules (a JSON number, any integer up to 2^53 - 1) under a name that says
// what the number is; its Timestamp is milliseconds, as a Date, which these are not.
builder.addScalarType('UnixTime', SafeIntResolver, {
  description:
    'A point in time: whole seconds since 1970-01-01T00:00:00Z (unix time), as a JSON number. An integer up to 2^53 - 1, so it does not end in 2038 as a 32-bit Int would. Codegen: `number`.',
  specifiedByURL: null,
});

// Metadata is its own scalar so that GraphiQL and generated types show its rule; the
// values it takes are JSONObject's, and the rule itself is each argument's zod schema, so
// a breach is BAD_USER_INPUT naming the field, as it always was.
builder.addScalarType('Metadata', JSONObjectResolver, {
  description: `Up to ${LIMITS.metadataKeys} key-value pairs of strings attached to an object: a JSON object whose keys are at most ${LIMITS.metadataKeyLength} characters and whose values are strings of at most ${LIMITS.metadataValueLength} characters. Codegen: \`Record<string, string>\`.`,
  specifiedByURL: null,
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

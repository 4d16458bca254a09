import SchemaBuilder from '@pothos/core';
import ZodPlugin from '@pothos/plugin-zod';
import { JSONObjectResolver } from 'graphql-scalars';
import type { GraphQLContext } from './context.js';
import { validationError } from './errors.js';

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  // Fields are non-null unless they say otherwise: the contract's `!`s are the norm.
  DefaultFieldNullability: false;
  Scalars: {
    JSONObject: { Input: Record<string, unknown>; Output: Record<string, unknown> };
  };
}>({
  plugins: [ZodPlugin],
  defaultFieldNullability: false,
  zod: { validationError: (error) => validationError(error) },
});

// graphql-scalars' JSONObject rejects arrays and primitives where an object is expected.
builder.addScalarType('JSONObject', JSONObjectResolver);

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

/**
 * The one place that decides what a client sees of an error. Domain errors and
 * validation failures become GraphQLErrors with `extensions.code`; anything else is a
 * bug: logged whole, shown to the client only as yoga's masked "Unexpected error.".
 */
import { GraphQLError } from 'graphql';
import { maskError as yogaMaskError } from 'graphql-yoga';
import type { ZodError } from 'zod';
import { DomainError } from '../domain/errors.js';

export function validationError(error: ZodError): GraphQLError {
  const fields = error.issues.map((issue) => issue.path.join('.'));
  const detail = error.issues
    .map((issue) => `${issue.path.join('.') || 'input'}: ${issue.message}`)
    .join('; ');
  return new GraphQLError(`Invalid input: ${detail}`, {
    extensions: { code: 'BAD_USER_INPUT', fields },
  });
}

export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const graphqlError = error instanceof GraphQLError ? error : undefined;
  const original = graphqlError?.originalError ?? error;
  if (original instanceof DomainError) {
    return new GraphQLError(original.message, {
      nodes: graphqlError?.nodes,
      path: graphqlError?.path,
      extensions: { code: original.code, ...original.details },
    });
  }
  if (original instanceof GraphQLError && original.extensions['code']) {
    return new GraphQLError(original.message, {
      nodes: graphqlError?.nodes,
      path: graphqlError?.path,
      extensions: original.extensions,
    });
  }
  return yogaMaskError(error, message, isDev);
}

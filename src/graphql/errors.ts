/**
 * The one place that decides what a client sees of an error. Domain errors and
 * validation failures become GraphQLErrors with `extensions.code`; anything else is a
 * bug: logged whole, shown to the client only as yoga's masked "Unexpected error.".
 */
import { GraphQLError } from 'graphql';
import { maskError as yogaMaskError } from 'graphql-yoga';
import type { Plugin } from 'graphql-yoga';
import type { ZodError } from 'zod';
import { databaseVerdict } from '../db/errors.js';
import { ERROR_CODES, type ErrorCode } from '../domain/error-codes.js';
import { DomainError, InvalidRunStateError } from '../domain/errors.js';
import { enumName } from './enum-names.js';

/**
 * A GraphQLError with a code from the catalogue: how every layer above the domain makes an
 * error a client sees (the domain throws its own errors, mapped by {@link maskError}).
 */
export function codedError(code: ErrorCode, message: string, extensions?: Record<string, unknown>): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extensions } });
}

/**
 * What yoga reads to answer an error over HTTP with the catalogue's status (it shows the
 * client neither this nor the headers); `spec` marks a request refused before it ran.
 */
export function httpStatus(code: ErrorCode, extra?: { headers?: Record<string, string>; spec?: boolean }) {
  return { http: { status: ERROR_CODES[code].status, ...extra } };
}

export function validationError(error: ZodError): GraphQLError {
  const fields = error.issues.map((issue) => issue.path.join('.'));
  const detail = error.issues.map((issue) => `${issue.path.join('.') || 'input'}: ${issue.message}`).join('; ');
  return codedError('BAD_USER_INPUT', `Invalid input: ${detail}`, { fields });
}

/**
 * A domain error's extensions: its code and details, a run status spelled as the RunStatus
 * enum spells it (what the client reads everywhere else).
 */
function extensionsOf(error: DomainError): Record<string, unknown> {
  const extensions: Record<string, unknown> = { code: error.code, ...error.details };
  if (error instanceof InvalidRunStateError) extensions['status'] = enumName(error.status);
  return extensions;
}

/**
 * yoga's `maskError`. The checks are structural, not `instanceof GraphQLError`: under a
 * test runner graphql can load twice (ESM and CJS), and the classes then differ.
 */
export function maskError(error: unknown, message: string): Error {
  const located = isGraphQLErrorLike(error) ? error : undefined;
  const thrown = located?.originalError ?? error;
  const original = databaseVerdict(thrown);
  const expected =
    original instanceof DomainError
      ? extensionsOf(original)
      : isGraphQLErrorLike(original) && typeof original.extensions?.['code'] === 'string'
        ? original.extensions
        : undefined;
  if (expected) {
    // Returning the error itself (with its code) tells yoga it is expected: no error log.
    // Dropping the wrapped original makes it a plain GraphQL error to yoga too, which
    // otherwise answers an error-only result (a failed subscribe over HTTP) with a 500.
    if (located) {
      Object.assign((located.extensions ??= {}), expected);
      // A database error's message names the statement and its parameters: the client gets the verdict's.
      if (original !== thrown) located.message = (original as Error).message;
      (located as { originalError?: unknown }).originalError = undefined;
      return located as Error;
    }
    return new GraphQLError((original as Error).message, { extensions: expected });
  }
  if (located && !located.originalError) return located as Error; // parse and validation errors
  // A bug: the client learns nothing of it; yoga logs the original error whole.
  return yogaMaskError(error, message, false);
}

/**
 * Over HTTP, an answer that reports the database unreachable gets status 503 and a
 * Retry-After header: yoga reads both from `extensions.http` of an error (and shows
 * neither). Only HTTP answers come here (yoga's result processing, and the fast path's);
 * over a websocket the operation's error carries the code alone.
 */
export function markUnavailable(result: unknown): void {
  for (const one of Array.isArray(result) ? result : [result]) {
    const errors = (one as { errors?: readonly GraphQLErrorLike[] } | null)?.errors;
    if (!errors) continue;
    for (const error of errors) {
      const extensions = error.extensions;
      if (extensions?.['code'] !== UNAVAILABLE || extensions['http']) continue;
      Object.assign(extensions, httpStatus(UNAVAILABLE, { headers: { 'retry-after': String(extensions['retryAfterSeconds']) } }));
    }
  }
}

const UNAVAILABLE: ErrorCode = 'SERVICE_UNAVAILABLE';

/** {@link markUnavailable} on yoga's path (the fast path calls it itself). */
export function useUnavailableStatus(): Plugin {
  return { onResultProcess: ({ result }) => markUnavailable(result) };
}

interface GraphQLErrorLike {
  name: string;
  message: string;
  originalError?: unknown;
  nodes?: GraphQLError['nodes'];
  path?: GraphQLError['path'];
  extensions?: Record<string, unknown>;
}

function isGraphQLErrorLike(e: unknown): e is GraphQLErrorLike {
  return e instanceof Error && (e.name === 'GraphQLError' || 'extensions' in e) && 'path' in e;
}

/**
 * graphql-js reports bad variables ("Variable "$x" got invalid value ...") with no code
 * and no path, before any resolver runs (yoga's parse and validation errors have codes). They are the client's input: BAD_USER_INPUT.
 * An envelop plugin, so the websocket path gets the same.
 */
const BAD_INPUT: ErrorCode = 'BAD_USER_INPUT';

export function useInputErrorCodes(): Plugin {
  const stamp = (result: { errors?: readonly GraphQLErrorLike[] }) => {
    for (const error of result.errors ?? []) {
      // No path: raised before execution, about the request itself, never a resolver bug.
      if (!error.path && error.extensions && error.extensions['code'] === undefined) {
        error.extensions['code'] = BAD_INPUT;
      }
    }
  };
  // The same hooks object for every operation: nothing is allocated per request or per subscription.
  const stampResult = ({ result }: { result: object }) => void ('errors' in result && stamp(result as never));
  const afterExecute = { onExecuteDone: stampResult };
  const afterSubscribe = { onSubscribeResult: stampResult };
  return {
    onExecute: () => afterExecute,
    onSubscribe: () => afterSubscribe,
  };
}

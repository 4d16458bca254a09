/**
 * What a REST client sees of an error: OpenAI's `{ "error": { message, type, param, code } }`
 * with an HTTP status, as the Assistants API answers the same case, so the official
 * clients raise the error class an app already catches (BadRequestError,
 * AuthenticationError, NotFoundError, RateLimitError...). `code` is Runway's code
 * (docs/errors.md), `param` the request field at fault. Anything that is not a domain
 * error is a bug: logged whole by the caller, answered "Unexpected error." with no stack.
 */
import type { ServerResponse } from 'node:http';
import type { z, ZodError } from 'zod';
import { databaseVerdict } from '../db/errors.js';
import { ERROR_CODES, type ErrorCode } from '../domain/error-codes.js';
import { DomainError } from '../domain/errors.js';

/** OpenAI's error object (`ErrorResponse.error`). */
export interface ErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

/**
 * The status and OpenAI error type each code is answered with. The status is the
 * catalogue's but where the Assistants API answers otherwise: a thread busy with a run,
 * and a run whose status does not allow the call, are 400 there ("Thread ... already has
 * an active run ...", "Cannot cancel run with status 'completed'.", "Runs in status ... do
 * not accept tool outputs."), and apps written for it catch BadRequestError.
 */
const ANSWERS: Record<ErrorCode, { status: number; type: string }> = {
  BAD_USER_INPUT: { status: 400, type: 'invalid_request_error' },
  UNAUTHENTICATED: { status: 401, type: 'invalid_request_error' },
  FORBIDDEN: { status: 403, type: 'invalid_request_error' },
  CSRF_REQUIRED_HEADER: { status: 403, type: 'invalid_request_error' },
  PERSISTED_DOCUMENT_REQUIRED: { status: 400, type: 'invalid_request_error' },
  PERSISTED_DOCUMENT_NOT_FOUND: { status: 400, type: 'invalid_request_error' },
  NOT_FOUND: { status: 404, type: 'invalid_request_error' },
  MODEL_NOT_AVAILABLE: { status: 400, type: 'invalid_request_error' },
  INVALID_RUN_STATE: { status: 400, type: 'invalid_request_error' },
  THREAD_HAS_ACTIVE_RUN: { status: 400, type: 'invalid_request_error' },
  MESSAGE_IN_PROGRESS: { status: 400, type: 'invalid_request_error' },
  RESOURCE_BUSY: { status: ERROR_CODES.RESOURCE_BUSY.status, type: 'server_error' },
  LENGTH_REQUIRED: { status: 411, type: 'invalid_request_error' },
  PAYLOAD_TOO_LARGE: { status: 413, type: 'invalid_request_error' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, type: 'invalid_request_error' },
  RESPONSE_TOO_LARGE: { status: 400, type: 'invalid_request_error' },
  RATE_LIMITED: { status: 429, type: 'requests' },
  TOO_MANY_SUBSCRIPTIONS: { status: 429, type: 'requests' },
  SUBSCRIPTION_LAGGED: { status: 409, type: 'invalid_request_error' },
  CURSOR_EXPIRED: { status: 410, type: 'invalid_request_error' },
  SERVICE_UNAVAILABLE: { status: 503, type: 'server_error' },
  INTERNAL_SERVER_ERROR: { status: 500, type: 'server_error' },
  GRAPHQL_PARSE_FAILED: { status: 400, type: 'invalid_request_error' },
  GRAPHQL_VALIDATION_FAILED: { status: 400, type: 'invalid_request_error' },
  BAD_REQUEST: { status: 400, type: 'invalid_request_error' },
  OPERATION_RESOLUTION_FAILURE: { status: 400, type: 'invalid_request_error' },
};

/** An error answered as it is: its code, message and field. */
export class RestError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly param: string | null = null,
    /** Seconds the client should wait before it retries (Retry-After). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** A request the router has no endpoint for, as the API answers it. */
export function invalidUrl(method: string | undefined, path: string): RestError {
  return new RestError('NOT_FOUND', `Invalid URL (${method ?? 'GET'} ${path})`);
}

/** A body or query that breaks a rule; the first issue names the field (paths are the request's own). */
export function invalidInput(error: ZodError): RestError {
  const issues = error.issues.flatMap((issue) => specific(issue, []));
  const param = issues[0] ? fieldName(issues[0].path) : '';
  const detail = issues.map((issue) => `${fieldName(issue.path) || 'body'}: ${issue.message}`).join('; ');
  return new RestError('BAD_USER_INPUT', `Invalid input: ${detail}`, param || null);
}

/**
 * What an issue says, at its full path: an unknown field names itself; a value that fits
 * none of a union's shapes is told what is wrong with the shape of its kind (an array of
 * text parts, say), not merely that no shape fits.
 */
function specific(issue: z.core.$ZodIssue, prefix: PropertyKey[]): { path: PropertyKey[]; message: string }[] {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => ({ path: [...path, key], message: 'unknown parameter' }));
  if (issue.code === 'invalid_union') {
    // The shapes of another kind fail at the value itself (a string where an array is given, an object where 'auto' is).
    const kindOfIt = issue.errors.filter(
      (branch) => !branch.every((i) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value')),
    );
    const [branch] = kindOfIt.length === 1 ? kindOfIt : [];
    if (branch) return branch.flatMap((i) => specific(i, path));
  }
  return [{ path, message: issue.message }];
}

/**
 * The answer to an error: a RestError or a domain error as it says, a database error as
 * what it means (unreachable: 503), anything else as 500. `bug` is true for the last.
 */
export function errorAnswer(thrown: unknown): { status: number; body: { error: ErrorBody }; retryAfterSeconds?: number; bug: boolean } {
  const error = databaseVerdict(thrown);
  if (error instanceof RestError) return answer(error.code, error.message, error.param, error.retryAfterSeconds);
  if (error instanceof DomainError) {
    const retry = error.details['retryAfterSeconds'];
    return answer(error.code, error.message, paramOf(error), typeof retry === 'number' ? retry : undefined);
  }
  return { ...answer('INTERNAL_SERVER_ERROR', 'Unexpected error.', null), bug: true };
}

function answer(code: ErrorCode, message: string, param: string | null, retryAfterSeconds?: number) {
  const { status, type } = ANSWERS[code];
  return { status, body: { error: { message, type, param, code } }, retryAfterSeconds, bug: false };
}

/**
 * Writes the answer to an error (with Retry-After when the client should wait, and how
 * to authenticate with a 401); returns whether the error is a bug, for the caller to log.
 */
export function sendRestError(res: ServerResponse, thrown: unknown): { bug: boolean } {
  const { status, body, retryAfterSeconds, bug } = errorAnswer(thrown);
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) };
  if (retryAfterSeconds !== undefined) headers['retry-after'] = String(retryAfterSeconds);
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  res.writeHead(status, headers).end(text);
  return { bug };
}

/**
 * The request field a domain error is about, as REST spells it: the use cases name fields
 * as GraphQL's arguments do (`input.toolChoice.function.name`, `toolOutputs`), REST has
 * them snake_case, and the idempotency key as a header.
 */
function paramOf(error: DomainError): string | null {
  const fields = error.details['fields'];
  const field = Array.isArray(fields) && typeof fields[0] === 'string' ? fields[0] : error.details['argument'];
  if (typeof field !== 'string') return null;
  if (field === 'idempotencyKey') return 'Idempotency-Key';
  return (
    fieldName(
      field
        .replace(/^input\./, '')
        .split('.')
        .map(snakeCase),
    ) || null
  );
}

/** A use case's field name as the API spells it: `lastMessages` is `last_messages`. */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** A field's path as the API writes a param: `[i]` for positions (`tools[0].function.name`). */
export function fieldName(path: readonly PropertyKey[]): string {
  let name = '';
  for (const segment of path) name += typeof segment === 'number' ? `[${segment}]` : (name ? '.' : '') + String(segment);
  return name;
}

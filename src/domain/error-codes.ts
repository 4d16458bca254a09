/**
 * Every `extensions.code` Runway answers, as plain data: what it means, the status a plain
 * HTTP (REST) transport answers it with, and whether the client may send the same request
 * again. Every layer takes its codes from here (a code not listed does not compile), and
 * each transport maps them to what it speaks: the GraphQL endpoint sets HTTP statuses only
 * for the refusals GraphQL over HTTP allows (see docs/errors.md), the REST face (`/v1`)
 * answers every code with its status, but where OpenAI's Assistants API, whose wire format
 * it speaks, answers otherwise (src/rest/errors.ts).
 *
 * `retryable`: the same request, unchanged, may succeed later without the client doing
 * anything else (after `retryAfterSeconds` where the error gives it). A request refused for
 * what it is (its input, its key, its size) is not.
 */

export interface ErrorCodeInfo {
  /** The status a plain HTTP transport answers with. */
  readonly status: number;
  readonly retryable: boolean;
  /** What happened and what the client can do, in one line. */
  readonly meaning: string;
  /** Who makes it: Runway's code, or only graphql-yoga (nothing in src/ writes it). */
  readonly from: 'runway' | 'yoga';
}

export const ERROR_CODES = {
  BAD_USER_INPUT: {
    status: 400,
    retryable: false,
    meaning: 'An argument or variable is invalid (named in `fields`), or the query costs more than GRAPHQL_MAX_COST with its variables.',
    from: 'runway',
  },
  UNAUTHENTICATED: {
    status: 401,
    retryable: false,
    meaning: 'No valid API key: missing, unknown or revoked (on a websocket the socket is also closed with 4401).',
    from: 'runway',
  },
  FORBIDDEN: {
    status: 403,
    retryable: false,
    meaning:
      'The credentials do not open this endpoint: `/metrics` with a wrong `METRICS_TOKEN`, or on the API port of a deployment with keys and no `METRICS_TOKEN` (use `METRICS_PORT`).',
    from: 'runway',
  },
  CSRF_REQUIRED_HEADER: {
    status: 403,
    retryable: false,
    meaning: 'A request a browser could send cross-site without a preflight must carry the `x-graphql-yoga-csrf` header.',
    from: 'runway',
  },
  PERSISTED_DOCUMENT_REQUIRED: {
    status: 400,
    retryable: false,
    meaning:
      'With `ALLOW_ARBITRARY_OPERATIONS=false` only persisted documents run: send `documentId` (or `extensions.persistedQuery.sha256Hash`), not `query`; also a request that sends neither.',
    from: 'runway',
  },
  PERSISTED_DOCUMENT_NOT_FOUND: {
    status: 400,
    retryable: false,
    meaning: 'The persisted document id (`documentId`) is not in the `PERSISTED_DOCUMENTS` manifest the server was started with.',
    from: 'runway',
  },
  NOT_FOUND: {
    status: 404,
    retryable: false,
    meaning: "No such assistant, thread, run, message or run step in the caller's project (`kind`, `id`).",
    from: 'runway',
  },
  MODEL_NOT_AVAILABLE: {
    status: 400,
    retryable: false,
    meaning:
      'No model route serves the model (`model`): name a model a route of MODEL_ROUTES (or the OPENAI_BASE_URL catch-all) takes, or `scripted`/`scripted-*`.',
    from: 'runway',
  },
  INVALID_RUN_STATE: {
    status: 409,
    retryable: false,
    meaning:
      'The run is in a status (`status`, as the RunStatus enum spells it) that does not allow this: cancelling a finished run, tool outputs for a run that waits for none.',
    from: 'runway',
  },
  THREAD_HAS_ACTIVE_RUN: {
    status: 409,
    retryable: true,
    meaning: 'The thread already has an active run (`runId`): the request goes through once that run ends.',
    from: 'runway',
  },
  MESSAGE_IN_PROGRESS: {
    status: 409,
    retryable: true,
    meaning:
      'The message is being written by a run (`runId`) and cannot be deleted yet: the request goes through once the run ends (cancel it to end it now).',
    from: 'runway',
  },
  RESOURCE_BUSY: {
    status: 409,
    retryable: true,
    meaning:
      'A row the request needs is held by another operation past the lock timeout, or a statement timed out: retry after `retryAfterSeconds`.',
    from: 'runway',
  },
  LENGTH_REQUIRED: {
    status: 411,
    retryable: false,
    meaning: 'A POST without Content-Length (a body of unknown length is refused before it is read).',
    from: 'runway',
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    retryable: false,
    meaning: 'The request body is larger than MAX_BODY_BYTES.',
    from: 'runway',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retryable: false,
    meaning: 'The body names a charset other than UTF-8.',
    from: 'runway',
  },
  RESPONSE_TOO_LARGE: {
    status: 400,
    retryable: false,
    meaning: 'The answer would be larger than MAX_RESPONSE_BYTES (`maxBytes`): ask for smaller pages or fewer fields.',
    from: 'runway',
  },
  RATE_LIMITED: {
    status: 429,
    retryable: true,
    meaning: 'More mutations or new subscriptions per minute than the API key may make (`limit`): retry after `retryAfterSeconds`.',
    from: 'runway',
  },
  TOO_MANY_SUBSCRIPTIONS: {
    status: 429,
    retryable: true,
    meaning: 'The websocket holds WS_MAX_SUBSCRIPTIONS subscriptions already (`limit`): room comes back when one of them ends.',
    from: 'runway',
  },
  SUBSCRIPTION_LAGGED: {
    status: 409,
    retryable: true,
    meaning: 'The subscriber read too slowly and was cut off: subscribe again from `lastVersion` (a run) or `lastCursor` (a thread).',
    from: 'runway',
  },
  CURSOR_EXPIRED: {
    status: 410,
    retryable: false,
    meaning:
      'The events after the cursor given as `after` were pruned (RUN_EVENTS_RETENTION_DAYS): subscribe again without `after` for the current state, then live.',
    from: 'runway',
  },
  SERVICE_UNAVAILABLE: {
    status: 503,
    retryable: true,
    meaning: 'The database cannot be reached: retry after `retryAfterSeconds`; a write answered so may or may not have been made.',
    from: 'runway',
  },
  INTERNAL_SERVER_ERROR: {
    status: 500,
    retryable: false,
    meaning: 'An unexpected failure, logged whole on the server; the client sees only "Unexpected error.".',
    from: 'runway',
  },
  GRAPHQL_PARSE_FAILED: {
    status: 400,
    retryable: false,
    meaning: 'The document is not valid GraphQL syntax, has more than GRAPHQL_MAX_TOKENS tokens, or nests too deeply.',
    from: 'runway',
  },
  GRAPHQL_VALIDATION_FAILED: {
    status: 400,
    retryable: false,
    meaning: 'The document does not validate against the schema, or passes GRAPHQL_MAX_DEPTH, _ALIASES or _DIRECTIVES.',
    from: 'runway',
  },
  BAD_REQUEST: {
    status: 400,
    retryable: false,
    meaning:
      'The HTTP request is not a GraphQL request: no query, a body that is not JSON, a batch of more than 10; 405 for a mutation over GET, or a method other than GET and POST.',
    from: 'yoga',
  },
  OPERATION_RESOLUTION_FAILURE: {
    status: 400,
    retryable: false,
    meaning: 'The document has several operations and `operationName` names none of them (or none was given).',
    from: 'yoga',
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

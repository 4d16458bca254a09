/**
 * Domain errors: the failures a client can cause and should see. Each carries the
 * `extensions.code` it is reported with (from the catalogue, error-codes.ts);
 * `graphql/errors.ts` is the one place that turns them into GraphQLErrors. Any other
 * thrown error is a bug and stays masked.
 */
import type { ErrorCode } from './error-codes.js';
import type { RunStatus } from './run-lifecycle.js';

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadUserInputError extends DomainError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('BAD_USER_INPUT', message, details);
  }
}

/** No model route serves the model: an assistant or run with it could only fail. `field` names the input that gave it. */
export class ModelNotAvailableError extends DomainError {
  constructor(model: string, field: string) {
    super(
      'MODEL_NOT_AVAILABLE',
      `No model route serves model '${model}': use 'scripted' or 'scripted-*', or a model that MODEL_ROUTES (or OPENAI_BASE_URL / OPENAI_API_KEY) routes.`,
      { model, fields: [field] },
    );
  }
}

export class NotFoundError extends DomainError {
  /** The message depends only on the kind of object and its id, never on why it is missing. */
  constructor(kind: 'assistant' | 'thread' | 'run' | 'message' | 'step', id: string) {
    super('NOT_FOUND', `No ${kind} found with id '${id}'.`, { kind, id });
  }
}

/** The run's status does not allow the operation; each transport spells `status` as it spells run statuses. */
export class InvalidRunStateError extends DomainError {
  constructor(
    message: string,
    readonly status: RunStatus,
  ) {
    super('INVALID_RUN_STATE', message, { status });
  }
}

export class ThreadHasActiveRunError extends DomainError {
  /**
   * @param before what must wait for the run to end, when it is not a second run (which
   * the message then names): e.g. 'deleting the thread'.
   */
  constructor(threadId: string, runId: string | null, before?: string) {
    const run = runId ? `an active run ${runId}` : 'an active run';
    super(
      'THREAD_HAS_ACTIVE_RUN',
      before
        ? `Thread ${threadId} has ${run}: cancel it, or wait for it to end, before ${before}.`
        : `Thread ${threadId} already has ${run}.`,
      { threadId, runId },
    );
  }
}

/** The message is still being written by its run: it can be deleted once the run has ended it. */
export class MessageInProgressError extends DomainError {
  constructor(messageId: string, runId: string | null) {
    super(
      'MESSAGE_IN_PROGRESS',
      `Message ${messageId} is being written by run ${runId ?? '(unknown)'}; cancel the run, or wait for it to end, before deleting the message.`,
      { messageId, runId },
    );
  }
}

/**
 * A subscriber read too slowly and its buffer filled: the subscription ends, saying where
 * to resume from (`lastVersion` for a run, `lastCursor` for a thread). The event bus, which
 * cuts the reader off, does not know the position: the stream reports it again with it.
 */
export class SubscriptionLaggedError extends DomainError {
  constructor(resumeAt: Record<string, unknown> = {}) {
    super('SUBSCRIPTION_LAGGED', 'The subscription fell too far behind and was ended; subscribe again from the position given.', resumeAt);
  }
}

/**
 * The database cannot be reached (a restart, a failover, a network cut): nothing was
 * wrong with the request, and the same request may succeed after `retryAfterSeconds`.
 * A write answered this way may or may not have been made.
 */
export class ServiceUnavailableError extends DomainError {
  /** What clients are told to wait: about how long a restart or a blip keeps the database away. */
  static readonly RETRY_AFTER_SECONDS = 2;

  constructor(retryAfterSeconds = ServiceUnavailableError.RETRY_AFTER_SECONDS) {
    super('SERVICE_UNAVAILABLE', `The service cannot reach its database right now; retry in ${retryAfterSeconds} s.`, {
      retryAfterSeconds,
    });
  }
}

/** An answer would be larger than the server sends (MAX_RESPONSE_BYTES): ask for less. */
export class ResponseTooLargeError extends DomainError {
  constructor(maxBytes: number) {
    super('RESPONSE_TOO_LARGE', `The answer would be larger than ${maxBytes} bytes: ask for smaller pages or fewer fields.`, { maxBytes });
  }
}

/**
 * What the request needs is held by another operation longer than the database's
 * timeouts allow (a run a stopped process holds, a statement cut off): nothing is wrong
 * with the request, and it goes through when retried after `retryAfterSeconds`.
 */
export class ResourceBusyError extends DomainError {
  constructor() {
    super('RESOURCE_BUSY', 'The data this needs is busy (held by another operation); retry shortly.', {
      retryAfterSeconds: 1,
    });
  }
}

/**
 * A resume from a cursor whose next events were pruned (their run ended longer ago than
 * RUN_EVENTS_RETENTION_DAYS): a gap would follow, so the subscription is refused and says
 * how to start over. Told apart from a malformed cursor (BAD_USER_INPUT) by the thread's
 * history floor.
 */
export class CursorExpiredError extends DomainError {
  constructor(scope: { threadId: string; runId?: string }) {
    super(
      'CURSOR_EXPIRED',
      'The events after this cursor were pruned (they are kept RUN_EVENTS_RETENTION_DAYS after their run ended): subscribe again without `after` to get the current state, then every change from there.',
      { argument: 'after', ...scope, restart: 'subscribe without after' },
    );
  }
}

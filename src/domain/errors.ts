/**
 * Domain errors: the failures a client can cause and should see. Each carries the
 * `extensions.code` it is reported with; `graphql/errors.ts` is the one place that turns
 * them into GraphQLErrors. Any other thrown error is a bug and stays masked.
 */

export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'INVALID_RUN_STATE'
  | 'THREAD_HAS_ACTIVE_RUN'
  | 'SUBSCRIPTION_LAGGED'
  | 'RESOURCE_BUSY';

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

export class NotFoundError extends DomainError {
  /** The message depends only on the kind of object and its id, never on why it is missing. */
  constructor(kind: 'assistant' | 'thread' | 'run' | 'message', id: string) {
    super('NOT_FOUND', `No ${kind} found with id '${id}'.`, { kind, id });
  }
}

export class InvalidRunStateError extends DomainError {
  constructor(message: string, status: string) {
    super('INVALID_RUN_STATE', message, { status });
  }
}

export class ThreadHasActiveRunError extends DomainError {
  constructor(threadId: string, runId: string | null) {
    super(
      'THREAD_HAS_ACTIVE_RUN',
      runId
        ? `Thread ${threadId} already has an active run ${runId}.`
        : `Thread ${threadId} already has an active run.`,
      { threadId, runId },
    );
  }
}

/**
 * A subscriber read too slowly and its buffer filled: the subscription ends, saying where
 * to resume from (`lastVersion` for a run, `lastCursor` for a thread).
 */
export class SubscriptionLaggedError extends DomainError {
  constructor(resumeAt: Record<string, unknown>) {
    super(
      'SUBSCRIPTION_LAGGED',
      'The subscription fell too far behind and was ended; subscribe again from the position given.',
      resumeAt,
    );
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

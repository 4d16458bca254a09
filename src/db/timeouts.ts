/**
 * How long a PostgreSQL connection lets a statement run, wait on a lock, or sit idle
 * inside a transaction. Runway's statements take milliseconds and its transactions never
 * wait on anything but the database; anything longer is a stuck statement, a row held by
 * a stopped process, or a stopped process itself. These bound each: the request gets a
 * retryable RESOURCE_BUSY instead of holding a connection, and a stopped process's
 * transaction (and every row it locked) ends instead of lasting as long as the process.
 *
 * Sent as startup parameters of every connection (see client.ts), so they cost no
 * statement; 0 sends nothing and leaves the server's (or the role's) setting. PGlite has
 * none of this to bound: one process, one session, statements run one after another, and
 * no timer cancels a statement there (`statement_timeout` is accepted and ignored).
 *
 * Their defaults and variables are in config.ts.
 */
import { DEFAULTS } from '../config.js';

export interface DatabaseTimeouts {
  /**
   * `statement_timeout`: a statement running (or waiting) longer is cancelled (57014). Far
   * above any of Runway's statements, below what a client waits for an answer.
   */
  statementMs: number;
  /**
   * `lock_timeout`: a statement waiting longer for a lock (a row another transaction
   * holds) fails (55P03). Runway's transactions hold rows for milliseconds; one second
   * lets a commit queued behind a busy NOTIFY through, and answers a client whose run a
   * stopped process holds while it can still retry.
   */
  lockMs: number;
  /**
   * `idle_in_transaction_session_timeout`: a session idle this long inside a transaction
   * is ended by the server, which releases its locks. Runway never waits on anything else
   * inside a transaction, so only a stopped or frozen process stays idle there; keep it
   * below LEASE_SECONDS, so a frozen worker's rows are free before its runs are taken over.
   */
  idleInTransactionMs: number;
}

/** The timeouts given, the defaults for the others. */
export function databaseTimeouts(given: Partial<DatabaseTimeouts> = {}): DatabaseTimeouts {
  const pick = (key: keyof DatabaseTimeouts) => given[key] ?? DEFAULTS.databaseTimeouts[key];
  return { statementMs: pick('statementMs'), lockMs: pick('lockMs'), idleInTransactionMs: pick('idleInTransactionMs') };
}

/** The startup parameters that set these timeouts (a 0 is left out). */
export function timeoutParameters(timeouts: DatabaseTimeouts): TimeoutParameters {
  const parameters: TimeoutParameters = {};
  if (timeouts.statementMs > 0) parameters.statement_timeout = timeouts.statementMs;
  if (timeouts.lockMs > 0) parameters.lock_timeout = timeouts.lockMs;
  if (timeouts.idleInTransactionMs > 0) parameters.idle_in_transaction_session_timeout = timeouts.idleInTransactionMs;
  return parameters;
}

type TimeoutParameters = { statement_timeout?: number; lock_timeout?: number; idle_in_transaction_session_timeout?: number };

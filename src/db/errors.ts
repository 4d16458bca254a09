import { ResourceBusyError, ServiceUnavailableError } from '../domain/errors.js';

/**
 * Recognizes PostgreSQL errors whichever driver raised them: postgres.js and PGlite both
 * expose the SQLSTATE as `code`, and drizzle wraps them (the original is in `cause`).
 */
interface PgErrorLike {
  code?: unknown;
  constraint?: unknown;
  constraint_name?: unknown;
  cause?: unknown;
}

function findPgError(error: unknown): PgErrorLike | undefined {
  for (let e = error as PgErrorLike | undefined, depth = 0; e && depth < 5; e = e.cause as PgErrorLike, depth++) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e;
  }
  return undefined;
}

export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const pg = findPgError(error);
  if (!pg || pg.code !== '23505') return false;
  return constraint === undefined || pg.constraint === constraint || pg.constraint_name === constraint;
}

/**
 * Whether PostgreSQL refused a statement for something in its data (a constraint, a bad
 * value), chose it as a deadlock victim, or gave up waiting for a row another transaction
 * holds: an error that retrying item by item can isolate, as opposed to the database
 * being unreachable.
 */
export function isItemSpecificError(error: unknown): boolean {
  const code = findPgError(error)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23') || code === '40P01' || code === LOCK_NOT_AVAILABLE);
}

const LOCK_NOT_AVAILABLE = '55P03';
const QUERY_CANCELED = '57014';

/**
 * Whether a statement gave up: it waited for a lock longer than lock_timeout (55P03), or
 * ran (or waited) longer than statement_timeout, or was cancelled (57014). Nothing is
 * wrong with the request: retried a little later, it goes through.
 */
export function isResourceBusy(error: unknown): boolean {
  const code = findPgError(error)?.code;
  return code === LOCK_NOT_AVAILABLE || code === QUERY_CANCELED;
}

/**
 * Codes of a connection that failed or ended, from postgres.js (CONNECTION_*, CONNECT_TIMEOUT)
 * or from Node's socket (E*).
 */
const CONNECTION_FAILURES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a server that cannot serve now: a connection exception (class 08), an
 * administrator or crash shutdown (57P01, 57P02), a server still starting (57P03), no
 * connection slot left (53300).
 */
function isUnavailableState(code: string): boolean {
  return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300';
}

/**
 * Whether the database could not be reached or dropped the connection: nothing is wrong
 * with the statement, and the same statement may succeed once the database is back.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error as PgErrorLike | undefined, depth = 0; e && depth < 5; e = e.cause as PgErrorLike, depth++) {
    const code = e.code;
    if (typeof code !== 'string') continue;
    if (CONNECTION_FAILURES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code)) return isUnavailableState(code);
  }
  return false;
}

/**
 * Whether the same statement, repeated, may well succeed: the database was unreachable,
 * or the statement lost a race it can win next time (a serialization failure or a
 * deadlock), or waited too long on a lock or hit its statement timeout.
 */
export function isTransientDatabaseError(error: unknown): boolean {
  if (isDatabaseUnavailable(error)) return true;
  const code = findPgError(error)?.code;
  return code === '40001' || code === '40P01' || code === '55P03' || code === '57014';
}

/**
 * A database error the client can act on, as the domain error it means (unreachable:
 * retry later; busy: retry shortly); any other error as it is. Every transport reports
 * database errors through this.
 */
export function databaseVerdict(error: unknown): unknown {
  if (isDatabaseUnavailable(error)) return new ServiceUnavailableError();
  return isResourceBusy(error) ? new ResourceBusyError() : error;
}

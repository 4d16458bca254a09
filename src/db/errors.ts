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

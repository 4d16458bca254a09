/**
 * Idempotency keys for the mutations that create. A client whose answer was lost (a
 * network or database blip after the commit) retries with the same key and gets the
 * first result; nothing is created twice. A key belongs to a project and to one request:
 * the same key with other input (or for another mutation) is refused with BAD_USER_INPUT.
 *
 * The key is written by the same transaction (or statement) that creates the object, so
 * a create that committed always has its key, and a concurrent retry either finds it or
 * collides with it on the primary key and then finds it.
 */
import { createHash } from 'node:crypto';
import { and, eq, inArray, lt, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../db/client.js';
import { preparedPer } from '../db/prepared.js';
import { idempotencyKeys } from '../db/schema.js';
import { BadUserInputError } from '../domain/errors.js';

export type IdempotentOperation =
  'createAssistant' | 'createThread' | 'createMessage' | 'createRun' | 'createThreadAndRun' | 'submitToolOutputs';

/** A request made under an idempotency key. */
export interface IdempotentRequest {
  projectId: string;
  key: string;
  operation: IdempotentOperation;
  /** What was asked: SHA-256 of the operation and its input in canonical JSON. */
  fingerprint: string;
}

/** The request for `key`, or undefined when the client gave none. */
export function idempotentRequest(
  projectId: string,
  key: string | null | undefined,
  operation: IdempotentOperation,
  input: unknown,
): IdempotentRequest | undefined {
  if (key == null) return undefined;
  const fingerprint = createHash('sha256').update(operation).update('\n').update(canonicalJson(input)).digest('hex');
  return { projectId, key, operation, fingerprint };
}

/** JSON with object keys sorted and undefined left out: equal input, equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

const keyInProject = preparedPer((ex) =>
  ex
    .select({ operation: idempotencyKeys.operation, fingerprint: idempotencyKeys.fingerprint, resultId: idempotencyKeys.resultId })
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.projectId, sql.placeholder('projectId')), eq(idempotencyKeys.key, sql.placeholder('key'))))
    .prepare('idempotency_key'),
);

/**
 * The id the key's first request created, if the key was used; BAD_USER_INPUT if it was
 * used for something else.
 */
export async function firstResultId(ex: Executor, request: IdempotentRequest): Promise<string | undefined> {
  const [row] = await keyInProject(ex).execute({ projectId: request.projectId, key: request.key });
  if (!row) return undefined;
  if (row.operation !== request.operation || row.fingerprint !== request.fingerprint) {
    throw new BadUserInputError(
      `Invalid input: idempotencyKey: '${request.key}' was already used for ${row.operation === request.operation ? 'a request with other input' : row.operation}; use a new key for a new request.`,
      { fields: ['idempotencyKey'] },
    );
  }
  return row.resultId;
}

/** Records the key in the transaction that created `resultId`. */
export async function recordKey(ex: Executor, request: IdempotentRequest, resultId: string, now: number): Promise<void> {
  await ex.insert(idempotencyKeys).values({ ...request, resultId, createdAt: now });
}

/**
 * Runs `create` once per key: a request whose key was used gets `load` of the first
 * result instead; one that loses a race to a request with the same key too. `create`
 * must record the key (recordKey, or in its own statement) in its transaction.
 */
export async function once<T>(
  ex: Executor,
  request: IdempotentRequest | undefined,
  create: () => Promise<T>,
  load: (id: string) => Promise<T | undefined>,
): Promise<T> {
  if (!request) return create();
  const replay = async () => {
    const id = await firstResultId(ex, request);
    if (id === undefined) return undefined;
    const first = await load(id);
    if (first !== undefined) return first;
    // A delete takes the keys naming what it deletes in its transaction (forgetResults):
    // one that committed since the key was read took it too, and the key is free again.
    if ((await firstResultId(ex, request)) === undefined) return undefined;
    throw new Error(`the result ${id} of idempotency key ${request.key} is gone`);
  };
  const first = await replay();
  if (first !== undefined) return first;
  try {
    return await create();
  } catch (error) {
    // A concurrent request with the same key may have won: on the key itself, or on what
    // its object took first (a thread's one active run). Then its result is the answer.
    let winner: T | undefined;
    try {
      winner = await replay();
    } catch (replayError) {
      throw replayError instanceof BadUserInputError ? replayError : error;
    }
    if (winner === undefined) throw error;
    return winner;
  }
}

/**
 * Deletes the project's keys whose result is one of `resultIds` (ids, or a query of
 * them), in the transaction that deletes those objects: a key never names an object that
 * is gone, and a retry of the request that created one creates it anew.
 */
export async function forgetResults(ex: Executor, projectId: string, resultIds: readonly string[] | SQL): Promise<void> {
  const named = Array.isArray(resultIds)
    ? inArray(idempotencyKeys.resultId, [...resultIds])
    : sql`${idempotencyKeys.resultId} in (${resultIds as SQL})`;
  await ex.delete(idempotencyKeys).where(and(eq(idempotencyKeys.projectId, projectId), named));
}

/** The most keys one sweep deletes. */
export const SWEEP_BATCH = 1000;

/** Deletes up to SWEEP_BATCH keys recorded before `before` (Unix seconds); returns how many. */
export async function sweepKeys(ex: Executor, before: number): Promise<number> {
  const oldest = ex
    .select({ projectId: idempotencyKeys.projectId, key: idempotencyKeys.key })
    .from(idempotencyKeys)
    .where(lt(idempotencyKeys.createdAt, before))
    .orderBy(idempotencyKeys.createdAt)
    .limit(SWEEP_BATCH);
  const deleted = await ex
    .delete(idempotencyKeys)
    .where(sql`(${idempotencyKeys.projectId}, ${idempotencyKeys.key}) in (${oldest})`)
    .returning({ key: idempotencyKeys.key });
  return deleted.length;
}

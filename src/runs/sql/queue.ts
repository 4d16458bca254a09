/**
 * The queue and its leases: claims, takeovers, renewals, releases, and the runs due to expire.
 */
import { and, asc, eq, inArray, lt, lte, notInArray, sql, type SQL } from 'drizzle-orm';
import type { Db, Executor } from '../../db/client.js';
import { runs, type RunRow } from '../../db/schema.js';
import { ACTIVE_STATUSES, LEASED_STATUSES, sourcesOf } from '../../domain/run-lifecycle.js';
import { changedRunsWithEvents, withEvents, type AnnounceEvents } from './changes.js';
import { statusSet } from './transitions.js';

/**
 * The queue, in one statement (built once): moves up to `limit` queued runs to in_progress
 * for this worker, with a lease on the database clock, records their events and
 * announces them in one notification.
 *
 * Which runs: projects take turns (round robin). The projects with queued runs are visited
 * in id order, starting after `after` (the project this worker served last) and wrapping
 * around; the claim takes each one's oldest queued run, then each one's second, and so on.
 * So a project that floods the queue has one run started, then every other waiting
 * project has one, before its next; with one project the order is the oldest first, as a
 * plain queue's. The work is bounded by `limit`, not by the runs or projects waiting: the
 * projects are found by a skip scan of runs_queued_idx (one probe each, at most `limit`
 * of them), and each has at most 2 x `limit` runs ranked (the slack lets claims racing
 * on one project still find runs the others did not lock).
 *
 * SKIP LOCKED lets many workers claim at once without waiting on or double-taking each
 * other's rows. The runs to take are picked by an uncorrelated ARRAY(...) subquery, which
 * PostgreSQL runs exactly once: as `id in (select ... limit n for update skip locked)` it
 * may run again, skipping what it locked the first time, and take more than n runs (seen
 * here: 217 for a limit of 50).
 */
export function claimStatement(db: Db, announce: AnnounceEvents) {
  if (!sourcesOf('in_progress').includes('queued')) throw new Error('the lifecycle no longer starts queued runs');
  const ph = sql.placeholder;
  const at = sql`${ph('at')}::bigint`;
  const limit = sql`${ph('limit')}::integer`;
  const after = sql`${ph('after')}::text`;
  // The waiting project that comes next after `from`: one step of a skip scan.
  const next = (from: SQL) =>
    sql`(select q.project_id from runs q where q.status = 'queued' and q.project_id > ${from} order by q.project_id limit 1)`;
  const fairPick = sql`
    with recursive later(project_id, turn) as (
      select ${next(after)}, 1
      union all
      select ${next(sql`l.project_id`)}, l.turn + 1 from later l where l.project_id is not null and l.turn < ${limit}
    ), wrapped(project_id, turn) as (
      select ${next(sql`''`)}, ${limit} + 1
      union all
      select ${next(sql`w.project_id`)}, w.turn + 1 from wrapped w where w.project_id <= ${after} and w.turn < 2 * ${limit}
    ), projects as (
      select project_id, turn from later where project_id is not null
      union all
      select project_id, turn from wrapped where project_id <= ${after}
      order by turn limit ${limit}
    ), candidates as materialized (
      select array(
        select q.id
        from projects p
        cross join lateral (
          select q.id, row_number() over (order by q.id) as rank
          from runs q where q.project_id = p.project_id and q.status = 'queued'
          order by q.id limit 2 * ${limit}
        ) q
        order by q.rank, p.turn
      ) as ids
    )
    -- The candidates looked up by primary key (a join would scan every queued run).
    select r.id from runs r, candidates c
    where r.id = any(c.ids) and r.status = 'queued'
    order by array_position(c.ids, r.id)
    limit ${limit}
    for update of r skip locked`;
  const changed = db.$with('changed').as(
    db
      .update(runs)
      .set({
        ...statusSet('in_progress', at),
        workerId: sql`${ph('workerId')}::text`,
        leaseToken: sql`gen_random_uuid()`,
        leaseExpiresAt: sql`now() + make_interval(secs => ${ph('leaseSeconds')}::integer)`,
      })
      .where(and(sql`${runs.id} = any(array(${fairPick}))`, eq(runs.status, 'queued')))
      .returning(),
  );
  const statement = changedRunsWithEvents(db, { changed }, at, announce).prepare('claim_runs');
  return async (workerId: string, limit: number, after: string, now: number, leaseSeconds: number) =>
    withEvents(await statement.execute({ workerId, limit, after, at: now, leaseSeconds }), () => now);
}

/**
 * Takes over runs whose worker stopped renewing its lease (it crashed, or hangs): a new
 * claim on the same status, no transition. The caller resumes them.
 */
export async function takeOverLapsedRuns(ex: Executor, workerId: string, limit: number, leaseSeconds: number): Promise<RunRow[]> {
  const lapsed = ex
    .select({ id: runs.id })
    .from(runs)
    .where(and(inArray(runs.status, [...LEASED_STATUSES]), lt(runs.leaseExpiresAt, sql`now()`)))
    .orderBy(asc(runs.leaseExpiresAt))
    .limit(limit)
    .for('update', { skipLocked: true });
  // = any(array(...)): the pick runs once (see claimStatement).
  return ex
    .update(runs)
    .set({
      workerId,
      leaseToken: sql`gen_random_uuid()`,
      leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})`,
    })
    .where(and(sql`${runs.id} = any(array(${lapsed}))`, inArray(runs.status, [...LEASED_STATUSES]), lt(runs.leaseExpiresAt, sql`now()`)))
    .returning();
}

/**
 * Claims of this worker it does not know of, taken again under new tokens: a claim (or
 * takeover) that committed while its connection died leaves runs in this worker's name
 * that no execution holds, which would otherwise wait for their leases to lapse.
 * `executing`: the runs this worker is executing, left alone.
 */
export async function reclaimOwnRuns(
  ex: Executor,
  workerId: string,
  executing: readonly string[],
  leaseSeconds: number,
): Promise<RunRow[]> {
  return ex
    .update(runs)
    .set({
      leaseToken: sql`gen_random_uuid()`,
      leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})`,
    })
    .where(and(eq(runs.workerId, workerId), inArray(runs.status, [...LEASED_STATUSES]), notInArray(runs.id, [...executing])))
    .returning();
}

/** Extends a claim; undefined when the claim is no longer the caller's. */
export async function renewLease(ex: Executor, runId: string, leaseToken: string, leaseSeconds: number): Promise<RunRow | undefined> {
  const [run] = await ex
    .update(runs)
    .set({ leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})` })
    .where(and(eq(runs.id, runId), eq(runs.leaseToken, leaseToken)))
    .returning();
  return run;
}

/** Gives a claim up so that another worker takes the run over at once (graceful shutdown). */
export async function releaseLease(ex: Executor, runId: string, leaseToken: string): Promise<void> {
  await ex
    .update(runs)
    .set({ leaseExpiresAt: sql`now() - interval '1 second'` })
    .where(and(eq(runs.id, runId), eq(runs.leaseToken, leaseToken)));
}

/** Active runs whose expiresAt has passed, oldest first. */
export async function findDueRunIds(ex: Executor, at: number, limit: number): Promise<string[]> {
  const rows = await ex
    .select({ id: runs.id })
    .from(runs)
    .where(and(inArray(runs.status, [...ACTIVE_STATUSES]), lte(runs.expiresAt, at)))
    .orderBy(asc(runs.expiresAt))
    .limit(limit);
  return rows.map((r) => r.id);
}

/**
 * Active runs by status and model, for the metrics: a scan of the active runs only (the
 * partial indexes on queued, leased and active runs), not of every run ever made.
 */
export async function activeRunCounts(ex: Executor): Promise<{ status: string; model: string; count: number }[]> {
  return ex
    .select({ status: runs.status, model: runs.model, count: sql<number>`count(*)::integer` })
    .from(runs)
    .where(inArray(runs.status, [...ACTIVE_STATUSES]))
    .groupBy(runs.status, runs.model);
}

/** The queue's depth and its oldest run's createdAt (unix seconds), from runs_queued_idx. */
export async function queueStats(ex: Executor): Promise<{ depth: number; oldest: number | null }> {
  const [row] = await ex
    .select({ depth: sql<number>`count(*)::integer`, oldest: sql<string | null>`min(${runs.createdAt})` })
    .from(runs)
    .where(eq(runs.status, 'queued'));
  return { depth: row?.depth ?? 0, oldest: row?.oldest == null ? null : Number(row.oldest) };
}

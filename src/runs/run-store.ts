/**
 * All SQL about runs, their events and their steps. Functions take an executor (the
 * database or an open transaction) so the service decides the transaction boundaries.
 */
import { and, asc, desc, eq, getTableColumns, gt, inArray, lt, lte, sql } from 'drizzle-orm';
import { messages } from '../db/schema.js';
import type { Executor } from '../db/client.js';
import { planKeysetPage, type Page, type PageArgs } from '../db/keyset.js';
import { preparedPer } from '../db/prepared.js';
import { runEvents, runs, runSteps, type RunRow, type RunStepRow } from '../db/schema.js';
import type {
  IncompleteDetails,
  RequiredAction,
  RunError,
  RunStatusEvent,
  RunUsage,
  StepDetails,
} from '../domain/run.js';
import {
  ACTIVE_STATUSES,
  isTerminal,
  sourcesOf,
  timestampStampedBy,
  type RunStatus,
} from '../domain/run-status.js';

export type NewRun = typeof runs.$inferInsert;

export async function insertRun(ex: Executor, values: NewRun): Promise<{ run: RunRow; event: RunStatusEvent }> {
  const [run] = await ex.insert(runs).values(values).returning();
  if (!run) throw new Error('insert returned no row');
  const event = eventOf(run, run.createdAt);
  await ex.insert(runEvents).values(toEventRow(event));
  return { run, event };
}

const runById = preparedPer((ex) =>
  ex.select().from(runs).where(eq(runs.id, sql.placeholder('runId'))).limit(1).prepare('run_by_id'),
);

export async function findRun(ex: Executor, runId: string): Promise<RunRow | undefined> {
  const [run] = await runById(ex).execute({ runId });
  return run;
}

const runInProject = preparedPer((ex) =>
  ex
    .select()
    .from(runs)
    .where(and(eq(runs.id, sql.placeholder('runId')), eq(runs.projectId, sql.placeholder('projectId'))))
    .limit(1)
    .prepare('run_in_project'),
);

/** The run, if it exists in this project: another project's run is as absent as a missing one. */
export async function findRunInProject(ex: Executor, projectId: string, runId: string): Promise<RunRow | undefined> {
  const [run] = await runInProject(ex).execute({ runId, projectId });
  return run;
}

export async function findActiveRunId(ex: Executor, threadId: string): Promise<string | undefined> {
  const [row] = await ex
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.threadId, threadId), inArray(runs.status, [...ACTIVE_STATUSES])))
    .limit(1);
  return row?.id;
}

const firstRuns = (order: 'asc' | 'desc') =>
  preparedPer((ex) =>
    ex
      .select()
      .from(runs)
      .where(eq(runs.threadId, sql.placeholder('threadId')))
      .orderBy(order === 'asc' ? asc(runs.id) : desc(runs.id))
      .limit(sql.placeholder('limit'))
      .prepare(`first_runs_${order}`),
  );
const firstRunsAscending = firstRuns('asc');
const firstRunsDescending = firstRuns('desc');

export async function listRuns(
  ex: Executor,
  threadId: string,
  args: PageArgs,
  statuses?: readonly RunStatus[] | null,
): Promise<Page<RunRow>> {
  const plan = planKeysetPage(runs.id, args, 'run');
  // The first page of a thread, whichever order (what lists show): a prepared statement.
  if (!statuses?.length && args.after == null && args.before == null && args.last == null) {
    const statement = (args.order ?? 'desc') === 'asc' ? firstRunsAscending(ex) : firstRunsDescending(ex);
    return plan.page(await statement.execute({ threadId, limit: plan.limit }));
  }
  const rows = await ex
    .select()
    .from(runs)
    .where(
      and(
        eq(runs.threadId, threadId),
        statuses && statuses.length > 0 ? inArray(runs.status, [...statuses]) : undefined,
        plan.where,
      ),
    )
    .orderBy(plan.orderBy)
    .limit(plan.limit);
  return plan.page(rows);
}

export async function updateRunMetadata(
  ex: Executor,
  runId: string,
  metadata: Record<string, string>,
): Promise<RunRow | undefined> {
  const [run] = await ex.update(runs).set({ metadata }).where(eq(runs.id, runId)).returning();
  return run;
}

/** What a transition writes besides the status, for the statuses that carry data. */
export interface TransitionData {
  requiredAction?: RequiredAction;
  lastError?: RunError;
  incompleteDetails?: IncompleteDetails;
  usage?: RunUsage;
}

export interface TransitionGuard {
  /** Narrows the legal sources further: the caller's compare-and-set on what it saw. */
  from?: readonly RunStatus[];
  /** Applies only if the run is still at this version (nothing changed since it was read). */
  version?: number;
  /** Applies only while the caller's claim holds: the engine's guard. */
  leaseToken?: string;
  /** Applies only if the run's expiresAt is at or before this time: the sweeper's guard. */
  dueBy?: number;
}

/** The statuses in which a worker holds the run. */
const WORKER_STATUSES: readonly RunStatus[] = ['in_progress', 'cancelling'];

/**
 * Moves a run to `to` in one conditional UPDATE: it applies only while the run's status
 * is a legal source of `to` (from the transition table) and matches the guard, so
 * concurrent callers can never make an illegal move or lose one. Stamps the timestamps,
 * bumps the version and appends the event. Returns undefined when the guard did not
 * hold (the caller re-reads to learn why). Call inside a transaction.
 */
export async function transitionRun(
  ex: Executor,
  runId: string,
  to: RunStatus,
  at: number,
  data: TransitionData = {},
  guard: TransitionGuard = {},
): Promise<{ run: RunRow; event: RunStatusEvent } | undefined> {
  if (to === 'requires_action' && !data.requiredAction) throw new Error('requires_action needs requiredAction');
  if (to === 'failed' && !data.lastError) throw new Error('failed needs lastError');
  if (to === 'incomplete' && !data.incompleteDetails) throw new Error('incomplete needs incompleteDetails');

  const sources = guard.from ? sourcesOf(to).filter((s) => guard.from!.includes(s)) : sourcesOf(to);
  if (sources.length === 0) return undefined;

  const stamp = timestampStampedBy(to);
  const [run] = await ex
    .update(runs)
    .set({
      status: to,
      // SET expressions read the old row: this records where the run came from.
      previousStatus: sql`${runs.status}`,
      version: sql`${runs.version} + 1`,
      ...(stamp === 'startedAt' ? { startedAt: sql`coalesce(${runs.startedAt}, ${at})` } : {}),
      ...(stamp && stamp !== 'startedAt' ? { [stamp]: at } : {}),
      ...(isTerminal(to) ? { expiresAt: null } : {}),
      // requiredAction exists only while the run waits for it.
      requiredAction: to === 'requires_action' ? data.requiredAction : null,
      ...(data.lastError ? { lastError: data.lastError } : {}),
      ...(data.incompleteDetails ? { incompleteDetails: data.incompleteDetails } : {}),
      ...(data.usage ? { usage: data.usage } : {}),
      // Leaving the worker's hands ends its claim.
      ...(WORKER_STATUSES.includes(to) ? {} : { workerId: null, leaseToken: null, leaseExpiresAt: null }),
    })
    .where(
      and(
        eq(runs.id, runId),
        inArray(runs.status, [...sources]),
        guard.version !== undefined ? eq(runs.version, guard.version) : undefined,
        guard.leaseToken !== undefined ? eq(runs.leaseToken, guard.leaseToken) : undefined,
        guard.dueBy !== undefined ? lte(runs.expiresAt, guard.dueBy) : undefined,
      ),
    )
    .returning();
  if (!run) return undefined;
  const event = eventOf(run, at);
  await ex.insert(runEvents).values(toEventRow(event));
  return { run, event };
}

/** The event of the transition that left `run` as it is. */
export function eventOf(run: RunRow, at: number): RunStatusEvent {
  return {
    runId: run.id,
    threadId: run.threadId,
    threadSeq: run.threadSeq,
    version: run.version,
    previousStatus: run.previousStatus,
    status: run.status,
    at,
  };
}

function toEventRow(e: RunStatusEvent) {
  return {
    runId: e.runId,
    threadId: e.threadId,
    threadSeq: e.threadSeq,
    version: e.version,
    fromStatus: e.previousStatus,
    toStatus: e.status,
    at: e.at,
  };
}

function fromEventRow(r: typeof runEvents.$inferSelect): RunStatusEvent {
  return {
    runId: r.runId,
    threadId: r.threadId,
    threadSeq: r.threadSeq,
    version: r.version,
    previousStatus: r.fromStatus,
    status: r.toStatus,
    at: r.at,
  };
}

/**
 * A thread's events after position (threadSeq, version), in order: the thread's history
 * from a threadRunsChanged cursor.
 */
export async function threadEventsAfter(
  ex: Executor,
  threadId: string,
  after: { threadSeq: number; version: number },
  limit = 1000,
): Promise<RunStatusEvent[]> {
  const rows = await ex
    .select()
    .from(runEvents)
    .where(
      and(
        eq(runEvents.threadId, threadId),
        sql`(${runEvents.threadSeq}, ${runEvents.version}) > (${after.threadSeq}, ${after.version})`,
      ),
    )
    .orderBy(asc(runEvents.threadSeq), asc(runEvents.version))
    .limit(limit);
  return rows.map(fromEventRow);
}

/** The run's events after `afterVersion`, in order, up to `limit`. */
export async function runEventsAfter(
  ex: Executor,
  runId: string,
  afterVersion: number,
  limit = 1000,
): Promise<RunStatusEvent[]> {
  const rows = await ex
    .select()
    .from(runEvents)
    .where(and(eq(runEvents.runId, runId), gt(runEvents.version, afterVersion)))
    .orderBy(asc(runEvents.version))
    .limit(limit);
  return rows.map(fromEventRow);
}

export async function findRunEvent(ex: Executor, runId: string, version: number): Promise<RunStatusEvent | undefined> {
  const [row] = await ex
    .select()
    .from(runEvents)
    .where(and(eq(runEvents.runId, runId), eq(runEvents.version, version)))
    .limit(1);
  return row && fromEventRow(row);
}

export type NewRunStep = typeof runSteps.$inferInsert;

export async function insertRunStep(ex: Executor, step: NewRunStep): Promise<RunStepRow> {
  const [row] = await ex.insert(runSteps).values(step).returning();
  if (!row) throw new Error('insert returned no row');
  return row;
}

/** The run's TOOL_CALLS step still waiting for outputs, if any. */
export async function findOpenToolCallsStep(ex: Executor, runId: string): Promise<RunStepRow | undefined> {
  const [row] = await ex
    .select()
    .from(runSteps)
    .where(and(eq(runSteps.runId, runId), eq(runSteps.type, 'tool_calls'), eq(runSteps.status, 'in_progress')))
    .orderBy(asc(runSteps.id))
    .limit(1);
  return row;
}

export async function completeRunStep(
  ex: Executor,
  stepId: string,
  at: number,
  stepDetails: StepDetails,
): Promise<void> {
  await ex
    .update(runSteps)
    .set({ status: 'completed', completedAt: at, stepDetails })
    .where(eq(runSteps.id, stepId));
}

/**
 * Steps follow their run: when the run ends, its open steps end with it (cancelled,
 * failed or expired; a completed run has none open).
 */
const STEP_END: Partial<Record<RunStatus, { status: StepEnd; stamp: 'cancelledAt' | 'failedAt' | 'expiredAt' | 'completedAt' }>> = {
  cancelled: { status: 'cancelled', stamp: 'cancelledAt' },
  failed: { status: 'failed', stamp: 'failedAt' },
  expired: { status: 'expired', stamp: 'expiredAt' },
  completed: { status: 'completed', stamp: 'completedAt' },
  incomplete: { status: 'completed', stamp: 'completedAt' },
};
type StepEnd = 'cancelled' | 'failed' | 'expired' | 'completed';

/**
 * Steps follow their run: when the run ends, its open steps end with it.
 */
export async function closeOpenSteps(ex: Executor, runId: string, runStatus: RunStatus, at: number): Promise<void> {
  const end = STEP_END[runStatus];
  if (!end) return;
  await ex
    .update(runSteps)
    .set({ status: end.status, [end.stamp]: at })
    .where(and(eq(runSteps.runId, runId), eq(runSteps.status, 'in_progress')));
}

/**
 * The queue: moves up to `limit` of the oldest queued runs to in_progress for this
 * worker, with a lease on the database clock. SKIP LOCKED lets many workers claim at
 * once without waiting on or double-taking each other's rows. One statement per batch,
 * plus the batch's events.
 */
export async function claimQueuedRuns(
  ex: Executor,
  workerId: string,
  limit: number,
  at: number,
  leaseSeconds: number,
): Promise<{ run: RunRow; event: RunStatusEvent }[]> {
  if (!sourcesOf('in_progress').includes('queued')) throw new Error('the lifecycle no longer starts queued runs');
  const claimable = ex
    .select({ id: runs.id })
    .from(runs)
    .where(eq(runs.status, 'queued'))
    .orderBy(asc(runs.id))
    .limit(limit)
    .for('update', { skipLocked: true });
  const claimed = await ex
    .update(runs)
    .set({
      status: 'in_progress',
      previousStatus: sql`${runs.status}`,
      version: sql`${runs.version} + 1`,
      startedAt: sql`coalesce(${runs.startedAt}, ${at})`,
      workerId,
      leaseToken: sql`gen_random_uuid()`,
      leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})`,
    })
    .where(and(inArray(runs.id, claimable), eq(runs.status, 'queued')))
    .returning();
  const results = claimed.map((run) => ({ run, event: eventOf(run, at) }));
  if (results.length) await ex.insert(runEvents).values(results.map((r) => toEventRow(r.event)));
  return results;
}

/**
 * Takes over runs whose worker stopped renewing its lease (it crashed, or hangs): a new
 * claim on the same status, no transition. The caller resumes them.
 */
export async function takeOverLapsedRuns(
  ex: Executor,
  workerId: string,
  limit: number,
  leaseSeconds: number,
): Promise<RunRow[]> {
  const lapsed = ex
    .select({ id: runs.id })
    .from(runs)
    .where(and(inArray(runs.status, [...WORKER_STATUSES]), lt(runs.leaseExpiresAt, sql`now()`)))
    .orderBy(asc(runs.leaseExpiresAt))
    .limit(limit)
    .for('update', { skipLocked: true });
  return ex
    .update(runs)
    .set({
      workerId,
      leaseToken: sql`gen_random_uuid()`,
      leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})`,
    })
    .where(and(inArray(runs.id, lapsed), inArray(runs.status, [...WORKER_STATUSES]), lt(runs.leaseExpiresAt, sql`now()`)))
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

export async function listRunSteps(ex: Executor, runId: string): Promise<RunStepRow[]> {
  return ex.select().from(runSteps).where(eq(runSteps.runId, runId)).orderBy(asc(runSteps.id));
}

export async function threadMessages(ex: Executor, threadId: string) {
  return ex.select().from(messages).where(eq(messages.threadId, threadId)).orderBy(asc(messages.id));
}

export async function pageRunSteps(ex: Executor, runId: string, args: PageArgs): Promise<Page<RunStepRow>> {
  const plan = planKeysetPage(runSteps.id, args, 'step');
  const rows = await ex
    .select()
    .from(runSteps)
    .where(and(eq(runSteps.runId, runId), plan.where))
    .orderBy(plan.orderBy)
    .limit(plan.limit);
  return plan.page(rows);
}

/** One statement whatever the number of runs: the ids travel as one array parameter. */
const firstSteps = (order: 'asc' | 'desc') =>
  preparedPer((ex) => {
    const ranked = ex
      .select({
        ...getTableColumns(runSteps),
        rank: sql<number>`row_number() over (partition by ${runSteps.runId} order by ${runSteps.id} ${sql.raw(order)})`.as('rank'),
      })
      .from(runSteps)
      .where(sql`${runSteps.runId} = any(${sql.placeholder('runIds')}::text[])`)
      .as('ranked');
    return ex
      .select()
      .from(ranked)
      .where(lte(ranked.rank, sql.placeholder('limit')))
      .orderBy(ranked.runId, ranked.rank)
      .prepare(`first_steps_${order}`);
  });
const firstStepsAscending = firstSteps('asc');
const firstStepsDescending = firstSteps('desc');

/**
 * The first `limit` steps of each of these runs, in one statement (a window over the
 * runs' steps), so a page of runs with their steps costs one query, not one per run.
 */
export async function firstStepsOfRuns(
  ex: Executor,
  runIds: readonly string[],
  order: 'asc' | 'desc',
  limit: number,
): Promise<Map<string, RunStepRow[]>> {
  const statement = order === 'asc' ? firstStepsAscending(ex) : firstStepsDescending(ex);
  const rows = await statement.execute({ runIds: [...runIds], limit });
  const byRun = new Map<string, RunStepRow[]>(runIds.map((id) => [id, []]));
  for (const { rank: _rank, ...step } of rows) byRun.get(step.runId)?.push(step);
  return byRun;
}

export async function findRunStep(ex: Executor, stepId: string): Promise<RunStepRow | undefined> {
  const [row] = await ex.select().from(runSteps).where(eq(runSteps.id, stepId)).limit(1);
  return row;
}

export async function lastThreadPosition(ex: Executor, threadId: string): Promise<{ threadSeq: number; version: number }> {
  const [row] = await ex
    .select({ threadSeq: runEvents.threadSeq, version: runEvents.version })
    .from(runEvents)
    .where(eq(runEvents.threadId, threadId))
    .orderBy(desc(runEvents.threadSeq), desc(runEvents.version))
    .limit(1);
  return row ?? { threadSeq: 0, version: 0 };
}

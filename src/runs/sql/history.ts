/**
 * The runs' event history: the events after a position, and where a thread's ends.
 */
import { and, asc, desc, eq, gt, sql } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { preparedPer } from '../../db/prepared.js';
import { messages, runEvents, runs, type MessageRow, type RunRow, type RunState } from '../../db/schema.js';
import type { RunStatusEvent } from '../../domain/run.js';

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

/** The fields of a run a status change may change: what an event keeps of the run it left. */
export const RUN_STATE = [
  'status',
  'previousStatus',
  'version',
  'requiredAction',
  'lastError',
  'expiresAt',
  'startedAt',
  'cancelledAt',
  'failedAt',
  'completedAt',
  'incompleteDetails',
  'usage',
] as const satisfies readonly (keyof RunState)[];

export function runStateOf(run: RunRow): RunState {
  return Object.fromEntries(RUN_STATE.map((k) => [k, run[k]])) as RunState;
}

/** The run as of an event: as it is now, with what the event's change left of it. */
export function runAsOf(run: RunRow, state: RunState | null | undefined): RunRow {
  return state ? { ...run, ...state } : run;
}

export function toEventRow(e: RunStatusEvent, run?: RunRow) {
  return {
    runId: e.runId,
    threadId: e.threadId,
    threadSeq: e.threadSeq,
    version: e.version,
    fromStatus: e.previousStatus,
    toStatus: e.status,
    at: e.at,
    runState: run ? runStateOf(run) : null,
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
      and(eq(runEvents.threadId, threadId), sql`(${runEvents.threadSeq}, ${runEvents.version}) > (${after.threadSeq}, ${after.version})`),
    )
    .orderBy(asc(runEvents.threadSeq), asc(runEvents.version))
    .limit(limit);
  return rows.map(fromEventRow);
}

/** The run's events after `afterVersion`, in order, up to `limit`. */
export async function runEventsAfter(ex: Executor, runId: string, afterVersion: number, limit = 1000): Promise<RunStatusEvent[]> {
  const rows = await ex
    .select()
    .from(runEvents)
    .where(and(eq(runEvents.runId, runId), gt(runEvents.version, afterVersion)))
    .orderBy(asc(runEvents.version))
    .limit(limit);
  return rows.map(fromEventRow);
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

/** The run as the event of this version left it (as it is now, when that event has no record of it). */
export async function findRunAsOf(ex: Executor, runId: string, version: number): Promise<RunRow | undefined> {
  const [row] = await ex
    .select({ run: runs, state: runEvents.runState })
    .from(runs)
    .leftJoin(runEvents, and(eq(runEvents.runId, runs.id), eq(runEvents.version, version)))
    .where(eq(runs.id, runId))
    .limit(1);
  return row && runAsOf(row.run, row.state);
}

/** A run as it is, the record of the event that left it so, and what it is writing: see {@link runsNowOf}. */
export interface RunNowRow {
  run: RunRow;
  event: RunStatusEvent | undefined;
  sub: number;
  writing: MessageRow | undefined;
}

/**
 * Each of these runs as it is, the record of the event that left it so (if kept), the
 * last item event's `sub` of its version (0 without one) and the message it is writing
 * (if any), by id (absent: no such run). One statement for them all, so one snapshot of
 * each run (a message opened or ended between separate reads would leave the position
 * and the text disagreeing), and one round trip for every subscription that starts in
 * the same turn (see RunHistory.runNow).
 */
export async function runsNowOf(ex: Executor, runIds: readonly string[]): Promise<Map<string, RunNowRow>> {
  const rows = await runsNowStatement(ex).execute({ runIds: [...new Set(runIds)] });
  return new Map(
    rows.map((row) => [
      row.run.id,
      { run: row.run, event: row.event ? fromEventRow(row.event) : undefined, sub: row.sub, writing: row.writing ?? undefined },
    ]),
  );
}

const runsNowStatement = preparedPer((ex) =>
  ex
    .selectDistinctOn([runs.id], {
      run: runs,
      event: runEvents,
      sub: sql<number>`coalesce((select max(i.sub) from run_item_events i where i.run_id = ${runs.id} and i.version = ${runs.version}), 0)`.mapWith(
        Number,
      ),
      writing: messages,
    })
    .from(runs)
    .leftJoin(runEvents, and(eq(runEvents.runId, runs.id), eq(runEvents.version, runs.version)))
    .leftJoin(messages, and(eq(messages.runId, runs.id), eq(messages.status, 'in_progress')))
    .where(sql`${runs.id} = any(${sql.placeholder('runIds')}::text[])`)
    // The first message it is writing, as the engine writes one at a time.
    .orderBy(asc(runs.id), asc(messages.id))
    .prepare('runs_now'),
);

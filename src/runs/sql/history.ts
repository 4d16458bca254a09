/**
 * The runs' event history: the events after a position, and where a thread's ends.
 */
import { and, asc, desc, eq, gt, sql } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { runEvents, type RunRow } from '../../db/schema.js';
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

export function toEventRow(e: RunStatusEvent) {
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

export async function findRunEvent(ex: Executor, runId: string, version: number): Promise<RunStatusEvent | undefined> {
  const [row] = await ex
    .select()
    .from(runEvents)
    .where(and(eq(runEvents.runId, runId), eq(runEvents.version, version)))
    .limit(1);
  return row && fromEventRow(row);
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

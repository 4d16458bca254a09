/**
 * Retention of the runs' event history (RUN_EVENTS_RETENTION_DAYS): the status and item
 * events of runs that ended before a time are deleted, a batch of runs per transaction,
 * and each thread's floor (the last position deleted) is raised in the same transaction,
 * so that a resume from a cursor before it is told apart from one that lacks nothing.
 */
import { inArray, sql } from 'drizzle-orm';
import { rowsOf, type Db, type Executor } from '../../db/client.js';
import { eventHistoryFloors, runEvents, runItemEvents } from '../../db/schema.js';
import { TERMINAL_STATUSES, sqlList } from '../../domain/run-lifecycle.js';
import { comparePositions, type EventPosition } from '../../domain/run-events.js';

/** Runs whose history one transaction deletes: a few thousand rows at most, locked for milliseconds. */
export const PRUNE_BATCH = 200;

const TERMINAL_LIST = sql.raw(sqlList(TERMINAL_STATUSES));

/**
 * Deletes the event history of up to `batch` runs that ended before `endedBefore` (Unix
 * seconds), oldest first; answers how many runs. Runs still active are never touched (only
 * a terminal event makes a run prunable), and neither is anything that ended later.
 */
export async function pruneEventHistory(db: Db, endedBefore: number, now: number, batch = PRUNE_BATCH): Promise<number> {
  // The terminal events still kept, oldest first, through run_events_terminal_at_idx.
  const ended = await rowsOf<{ run_id: string }>(
    db,
    sql`select run_id from run_events where to_status in (${TERMINAL_LIST}) and at < ${endedBefore} order by at limit ${batch}`,
  );
  if (ended.length === 0) return 0;
  const runIds = ended.map((r) => r.run_id);
  return db.transaction(async (tx) => {
    const items = await tx.delete(runItemEvents).where(inArray(runItemEvents.runId, runIds)).returning({
      threadId: runItemEvents.threadId,
      threadSeq: runItemEvents.threadSeq,
      version: runItemEvents.version,
      sub: runItemEvents.sub,
    });
    const statuses = await tx
      .delete(runEvents)
      .where(inArray(runEvents.runId, runIds))
      .returning({ threadId: runEvents.threadId, threadSeq: runEvents.threadSeq, version: runEvents.version });
    // Another process pruned them first: nothing to record.
    if (statuses.length === 0 && items.length === 0) return 0;
    const floors = new Map<string, EventPosition>();
    for (const e of [...statuses.map((s) => ({ ...s, sub: 0 })), ...items]) {
      const floor = floors.get(e.threadId);
      if (!floor || comparePositions(e, floor) > 0) floors.set(e.threadId, { threadSeq: e.threadSeq, version: e.version, sub: e.sub });
    }
    const rows = [...floors].map(([threadId, p]) => ({ threadId, ...p, prunedAt: now }));
    await tx
      .insert(eventHistoryFloors)
      .values(rows)
      .onConflictDoUpdate({
        target: eventHistoryFloors.threadId,
        set: {
          threadSeq: sql`excluded.thread_seq`,
          version: sql`excluded.version`,
          sub: sql`excluded.sub`,
          prunedAt: sql`excluded.pruned_at`,
        },
        // A floor only rises (two processes may prune one thread's runs out of order).
        setWhere: sql`(excluded.thread_seq, excluded.version, excluded.sub) > (${eventHistoryFloors.threadSeq}, ${eventHistoryFloors.version}, ${eventHistoryFloors.sub})`,
      });
    return runIds.length;
  });
}

/** The last position of the thread's history that was pruned, if any was. */
export async function historyFloor(ex: Executor, threadId: string): Promise<EventPosition | undefined> {
  const [row] = await ex
    .select({ threadSeq: eventHistoryFloors.threadSeq, version: eventHistoryFloors.version, sub: eventHistoryFloors.sub })
    .from(eventHistoryFloors)
    .where(sql`${eventHistoryFloors.threadId} = ${threadId}`)
    .limit(1);
  return row;
}

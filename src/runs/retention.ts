/**
 * RUN_EVENTS_RETENTION_DAYS: the event history of runs that ended longer ago than that is
 * deleted, batch after batch (each its own short transaction, so pruning a backlog never
 * holds locks for long), by every worker process's housekeeping once a minute and by
 * `npm run retention:prune`. Runs, messages and steps stay: only the events a resume would
 * replay go, and a resume from before them is answered CURSOR_EXPIRED.
 */
import type { Db } from '../db/client.js';
import { PRUNE_BATCH, pruneEventHistory } from './sql/retention.js';

export interface RetentionOptions {
  /** RUN_EVENTS_RETENTION_DAYS; 0 keeps everything. */
  retentionDays: number;
  /** Unix seconds now. */
  now: number;
  /** Runs per transaction. @default 200 */
  batch?: number;
}

/** Prunes every run's history that is due; answers how many runs' history went. */
export async function pruneExpiredEvents(db: Db, options: RetentionOptions): Promise<number> {
  if (options.retentionDays <= 0) return 0;
  const batch = options.batch ?? PRUNE_BATCH;
  const endedBefore = options.now - options.retentionDays * 86_400;
  let total = 0;
  for (;;) {
    const pruned = await pruneEventHistory(db, endedBefore, options.now, batch);
    total += pruned;
    if (pruned < batch) return total;
  }
}

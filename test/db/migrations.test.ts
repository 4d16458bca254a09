/**
 * Data migrations: what they do to rows written by an older Runway.
 */
import { readFileSync } from 'node:fs';
import { asc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import { assistants, runEvents, runs, threads } from '../../src/db/schema.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';

let scratch: ScratchDatabase;
let database: Database;
beforeAll(async () => {
  scratch = await createScratchDatabase();
  database = await openDatabase({ url: scratch.url, pgliteDir: 'memory://' });
  await migrate(database);
});
afterAll(async () => {
  await database?.close();
  await scratch?.drop();
});

/** A migration's statements, as drizzle's migrator splits them. */
function statementsOf(file: string): string[] {
  return readFileSync(new URL(`../../drizzle/${file}`, import.meta.url), 'utf8').split('--> statement-breakpoint');
}

describe('0006_backfill_thread_order', () => {
  it('numbers the runs that predate thread order, and the thread runs after them, in creation order', async () => {
    const { db } = database;
    await db.insert(assistants).values({ id: 'asst_1', projectId: 'p', createdAt: 1, model: 'scripted' });
    await db.insert(threads).values([
      { id: 'thread_old', projectId: 'p', createdAt: 1, runCount: 1 },
      { id: 'thread_new', projectId: 'p', createdAt: 1, runCount: 2 },
    ]);
    const run = (id: string, threadId: string, threadSeq: number) => ({
      id,
      projectId: 'p',
      threadId,
      assistantId: 'asst_1',
      createdAt: 1,
      threadSeq,
      status: 'completed' as const,
      model: 'scripted',
      instructions: '',
    });
    // Two runs from before thread order (0), one created after it (numbered 1 again);
    // and a thread whose runs all came after it.
    await db.insert(runs).values([run('run_a', 'thread_old', 0), run('run_b', 'thread_old', 0), run('run_c', 'thread_old', 1)]);
    await db.insert(runs).values([run('run_d', 'thread_new', 1), run('run_e', 'thread_new', 2)]);
    await db.insert(runEvents).values(
      ['run_a', 'run_b', 'run_c', 'run_d', 'run_e'].map((runId) => ({
        runId,
        version: 1,
        threadId: runId < 'run_d' ? 'thread_old' : 'thread_new',
        threadSeq: { run_a: 0, run_b: 0, run_c: 1, run_d: 1, run_e: 2 }[runId]!,
        toStatus: 'queued' as const,
        at: 1,
      })),
    );

    for (const statement of statementsOf('0006_backfill_thread_order.sql')) await db.execute(sql.raw(statement));

    const seqs = await db.select({ id: runs.id, seq: runs.threadSeq }).from(runs).orderBy(asc(runs.id));
    expect(seqs).toEqual([
      { id: 'run_a', seq: 1 },
      { id: 'run_b', seq: 2 },
      { id: 'run_c', seq: 3 },
      { id: 'run_d', seq: 1 },
      { id: 'run_e', seq: 2 },
    ]);
    const events = await db.select({ id: runEvents.runId, seq: runEvents.threadSeq }).from(runEvents).orderBy(asc(runEvents.runId));
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 1, 2]);
    const [old] = await db.select({ n: threads.runCount }).from(threads).where(eq(threads.id, 'thread_old'));
    const [untouched] = await db.select({ n: threads.runCount }).from(threads).where(eq(threads.id, 'thread_new'));
    expect([old!.n, untouched!.n]).toEqual([3, 2]);
  });
});

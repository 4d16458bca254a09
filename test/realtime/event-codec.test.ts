/**
 * The wire form of events between processes. A statement that announces its own event
 * writes the payload in SQL (eventLinesSql); it must be the very payload encodeEvents
 * writes, or listeners would skip it.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import type { RunStatusEvent } from '../../src/domain/run.js';
import { decodeEvents, encodeEvents, eventLinesSql } from '../../src/realtime/event-codec.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';

let scratch: ScratchDatabase;
let database: Database;
beforeAll(async () => {
  scratch = await createScratchDatabase();
  database = await openDatabase({ url: scratch.url, pgliteDir: 'memory://' });
  await migrate(database); // for the run_status type
});
afterAll(async () => {
  await database?.close();
  await scratch?.drop();
});

const EVENTS: RunStatusEvent[] = [
  {
    runId: 'run_01JAAAAAAAAAAAAAAAAAAAAAAA',
    threadId: 'thread_01JBBBBBBBBBBBBBBBBBBBBBBB',
    threadSeq: 1,
    version: 1,
    previousStatus: null,
    status: 'queued',
    at: 1_790_000_000,
  },
  {
    runId: 'run_01JCCCCCCCCCCCCCCCCCCCCCCC',
    threadId: 'thread_01JD',
    threadSeq: 12,
    version: 7,
    previousStatus: 'requires_action',
    status: 'cancelled',
    at: 4_102_444_800,
  },
];

describe('event lines', () => {
  it('decode to the events they encode', () => {
    expect(decodeEvents(encodeEvents(EVENTS))).toEqual(EVENTS);
  });

  it('written by PostgreSQL are the very payload JavaScript writes', async () => {
    const rows = sql.join(
      [...EVENTS]
        .reverse()
        .map(
          (e) =>
            sql`(${e.runId}::text, ${e.threadId}::text, ${e.threadSeq}::integer, ${e.version}::integer, ${e.status}::run_status, ${e.previousStatus}::run_status, ${e.at}::bigint)`,
        ),
      sql`, `,
    );
    const lines = eventLinesSql({
      runId: sql`e.run_id`,
      threadId: sql`e.thread_id`,
      threadSeq: sql`e.thread_seq`,
      version: sql`e.version`,
      status: sql`e.status`,
      previousStatus: sql`e.previous_status`,
      at: sql`e.at`,
    });
    // Given in reverse: the aggregate puts them in order itself.
    const events = sql`(values ${rows}) as e(run_id, thread_id, thread_seq, version, status, previous_status, at)`;
    // postgres.js gives the rows, PGlite a result that holds them.
    const result: unknown = await database.db.execute(sql`select ${lines} as payload from ${events}`);
    const written = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { payload: string }[];
    expect(written[0]!.payload).toBe(encodeEvents(EVENTS));
  });
});

/**
 * The wire form of events between processes. A statement that announces its own event
 * writes the line in SQL (eventLineSql); it must be the very line encodeEvents writes,
 * or listeners would skip it.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import type { RunStatusEvent } from '../../src/domain/run.js';
import { decodeEvents, encodeEvents, eventLineSql } from '../../src/realtime/event-codec.js';
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
  { runId: 'run_01JAAAAAAAAAAAAAAAAAAAAAAA', threadId: 'thread_01JBBBBBBBBBBBBBBBBBBBBBBB', threadSeq: 1, version: 1, previousStatus: null, status: 'queued', at: 1_790_000_000 },
  { runId: 'run_01JCCCCCCCCCCCCCCCCCCCCCCC', threadId: 'thread_01JD', threadSeq: 12, version: 7, previousStatus: 'requires_action', status: 'cancelled', at: 4_102_444_800 },
];

describe('event lines', () => {
  it('decode to the events they encode', () => {
    expect(decodeEvents(encodeEvents(EVENTS))).toEqual(EVENTS);
  });

  it.each(EVENTS.map((e) => [e.status, e] as const))('written by PostgreSQL are the same line as in JavaScript (%s)', async (_, e) => {
    const line = eventLineSql({
      runId: sql`${e.runId}::text`,
      threadId: sql`${e.threadId}::text`,
      threadSeq: sql`${e.threadSeq}::integer`,
      version: sql`${e.version}::integer`,
      status: sql`${e.status}::run_status`,
      previousStatus: sql`${e.previousStatus}::run_status`,
      at: sql`${e.at}::bigint`,
    });
    // postgres.js gives the rows, PGlite a result that holds them.
    const result: unknown = await database.db.execute(sql`select ${line} as line`);
    const written = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { line: string }[];
    expect(written[0]!.line).toBe(encodeEvents([e]));
  });
});

/**
 * A statement announces every event it wrote as it commits, and a batch of runs finishing
 * (each with its message and step events) can have more lines than one NOTIFY may carry
 * (8,000 bytes). Such a statement must neither fail (PostgreSQL refuses the payload and
 * the whole batch rolls back, again and again under load) nor lose lines: the lines
 * arrive whole, in order, in as many notifications as they need.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import type { RunStatusEvent } from '../../src/domain/run.js';
import type { LiveEvent } from '../../src/domain/run-events.js';
import { encodeEvent, MAX_PAYLOAD_BYTES } from '../../src/realtime/event-codec.js';
import { postgresTransport } from '../../src/realtime/transport.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';
import { eventually } from '../support/test-app.js';

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

const event = (n: number): RunStatusEvent => ({
  runId: `run_01J${String(n).padStart(23, '0')}`,
  threadId: `thread_01J${String(n).padStart(23, '0')}`,
  threadSeq: n,
  version: 4,
  previousStatus: 'in_progress',
  status: 'completed',
  at: 1_790_000_000 + n,
});

describe('an announcement longer than one NOTIFY may carry', () => {
  it('arrives whole and in order, in several notifications of the same commit', async () => {
    const transport = postgresTransport(database);
    const received: LiveEvent[] = [];
    const stop = await transport.subscribe(
      (events) => received.push(...events),
      () => {},
    );
    try {
      const events = Array.from({ length: 300 }, (_, i) => event(i + 1));
      const lines = events.map(encodeEvent).join('\n');
      expect(Buffer.byteLength(lines)).toBeGreaterThan(3 * MAX_PAYLOAD_BYTES);
      await database.db.execute(sql`select ${transport.inStatement(sql`${lines}::text`)} as announced`);
      await eventually(() => received.length >= events.length, 5000);
      expect(received).toEqual(events);
    } finally {
      await stop();
    }
  });

  it('a short one is one notification, as before', async () => {
    const transport = postgresTransport(database);
    const payloads: number[] = [];
    const stop = await transport.subscribe(
      (events) => payloads.push(events.length),
      () => {},
    );
    try {
      const lines = [event(1), event(2)].map(encodeEvent).join('\n');
      await database.db.execute(sql`select ${transport.inStatement(sql`${lines}::text`)} as announced`);
      await eventually(() => payloads.length > 0, 5000);
      expect(payloads).toEqual([2]);
    } finally {
      await stop();
    }
  });
});

/**
 * Fan-out through Redis loses nothing when a writer dies between its commit and its
 * PUBLISH: the announcement waits in the outbox, in the writer's transaction, and
 * another process's relay publishes it. A writer that waits for its announcements to go
 * out waits for one pass of the relay, however busy other writes keep it.
 */
import { count, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventOutbox } from '../../src/db/schema.js';
import { createLogger } from '../../src/log.js';
import { encodeEvents } from '../../src/realtime/event-codec.js';
import { OutboxRelay } from '../../src/realtime/transport.js';
import * as store from '../../src/runs/sql/index.js';
import { newRun } from '../support/fixtures.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';

describe('the outbox (REDIS_URL)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('publishes an announcement whose writer never did (it died after the commit)', async () => {
    const { runId } = await newRun(t);
    const sub = collect(t.wsClient(), 'subscription($r: ID!) { runStatusChanged(runId: $r) { status version } }', { r: runId });
    await eventually(() => sub.events.length === 1);

    // What a writer leaves when it dies right after its commit: the transition, its event
    // row and its announcement in the outbox; no PUBLISH, no wake-up of any relay.
    const db = t.app.database.db;
    await db.transaction(async (tx) => {
      const moved = await store.transitionRun(tx, runId, 'cancelled', Math.floor(Date.now() / 1000));
      await tx.execute(sql`select runway_outbox_append(${encodeEvents([moved!.event])})`);
    });

    // The relays' sweep (once a second) finds it.
    await eventually(() => sub.events.length === 2, 5000);
    expect(sub.events.map((e) => e.data!.runStatusChanged)).toEqual([
      { status: 'QUEUED', version: 1 },
      { status: 'CANCELLED', version: 2 },
    ]);
    await sub.done;
    // The relay deletes the row in the transaction that published it: it commits just
    // after the subscriber may have heard the event. Then the outbox is empty.
    const deadline = Date.now() + 5000;
    let left = -1;
    while (left !== 0 && Date.now() < deadline) {
      left = (await db.select({ n: count() }).from(eventOutbox))[0]!.n;
      if (left !== 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(left).toBe(0);
  });

  it('is relayed, for a writer that waits, once a pass that began after it asked has ended, while other writes keep the relay busy', async () => {
    const db = t.app.database.db;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // Each pass takes 50 ms or more; writes come every few ms for 3 s, each waking the relay.
    const relay = new OutboxRelay(db, () => sleep(50), createLogger({ level: 'silent' }));
    relay.start();
    const until = Date.now() + 3000;
    const writes = (async () => {
      while (Date.now() < until) {
        // A payload every process's subscriber skips (a barrier it did not send).
        await db.execute(sql`select runway_outbox_append('#barrier spec')`);
        relay.wake();
        await sleep(2);
      }
    })();
    await sleep(200);
    const asked = Date.now();
    await relay.drained();
    const waited = Date.now() - asked;
    await writes;
    await relay.stop();
    expect(waited).toBeLessThan(1000);
  });
});

/**
 * Durability: runs that expired while no process was up are expired at the next start;
 * two workers share a queue without ever holding the same run at once. (A worker killed
 * mid-run: recovery.pg.test.ts.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asc, eq, sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { unixNow } from '../../src/app.js';
import { scriptedProvider } from '../../src/engine/providers/scripted.js';
import { Worker } from '../../src/engine/worker.js';
import { runEvents } from '../../src/db/schema.js';
import { usingPostgres } from '../support/database.js';
import { buildAppOn, queueRun, scratchDatabase, waitUntil, type Leftovers } from '../support/queued-runs.js';

const leftovers: Leftovers = [];
afterEach(async () => {
  for (const dispose of leftovers.splice(0).reverse()) await dispose();
});
const app = (db: Parameters<typeof buildAppOn>[1], options?: Parameters<typeof buildAppOn>[2]) => buildAppOn(leftovers, db, options);
const scratch = () => scratchDatabase(leftovers);

describe('runs that expired while no process was up', () => {
  it('are expired at the next start, before anything else runs', async () => {
    const dir = usingPostgres ? undefined : await mkdtemp(join(tmpdir(), 'runway-'));
    if (dir) leftovers.push(() => rm(dir, { recursive: true, force: true }));
    const db = dir ? { url: undefined, dir } : await scratch();
    // Created "an hour ago" with the default 10 minute expiry.
    const before = await app(db, { clock: () => unixNow() - 3600 });
    const waiting = await queueRun(before, 'hello');
    await before.stop();
    leftovers.pop();

    const after = await app(db, { worker: { pollMs: 60_000 } });
    const run = await after.engine.getById(waiting.id);
    expect(run).toMatchObject({ status: 'expired', expiresAt: null });
    // A new PGlite data directory takes 8-15 s to create on this machine kind (initdb on disk).
  }, 60_000);
});

describe('two workers on 200 runs', () => {
  it('finish every run, and never hold one run at the same time', async () => {
    const db = await scratch();
    const gateway = await app(db);
    const runs = [];
    for (let i = 0; i < 200; i++) runs.push(await queueRun(gateway, i % 10 === 0 ? 'sleep 20' : `message ${i}`));
    // Two workers (separate claims, separate lease tokens) on the same queue: separate
    // apps with their own pools on PostgreSQL; on PGlite, which one process owns, two
    // workers beside the gateway on its database.
    const workers: Worker[] = [];
    for (let i = 0; i < 2; i++) {
      if (usingPostgres) {
        workers.push((await app(db, { worker: { concurrency: 8, pollMs: 100 } })).worker!);
      } else {
        const w = new Worker({ runs: gateway.engine, providers: [scriptedProvider], concurrency: 8, pollMs: 50 });
        w.start();
        leftovers.push(() => w.stop());
        workers.push(w);
      }
    }
    const gw = gateway.database.db;
    await waitUntil(
      async () => {
        const [row] = await gw.execute(sql`select count(*)::int as n from runs where status = 'completed'`).then((r: any) => r.rows ?? r);
        return row.n === 200;
      },
      60_000,
      'all runs to complete',
    );
    for (const run of runs) {
      const events = await gw.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.version));
      expect(events.map((e) => e.toStatus)).toEqual(['queued', 'in_progress', 'completed']);
    }
    const [dupes] = await gw
      .execute(
        sql`select count(*)::int as n from (select thread_id from messages where role = 'assistant' group by thread_id having count(*) > 1) d`,
      )
      .then((r: any) => r.rows ?? r);
    expect(dupes.n).toBe(0);
    // One start per run (above) is one claim per run. And every claim ended with its run.
    const [takers] = await gw
      .execute(sql`select count(distinct worker_id)::int as n from runs where worker_id is not null`)
      .then((r: any) => r.rows ?? r);
    expect(takers.n).toBe(0); // claims end with the run: nothing left held
  }, 90_000);
});

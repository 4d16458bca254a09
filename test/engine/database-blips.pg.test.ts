/**
 * Connection blips while models answer: worker processes reach PostgreSQL through a TCP
 * proxy that cuts every connection now and then. A cut may land on any of the engine's
 * statements (a claim, a read of the prompt, the commit of an answer, a renewal); none
 * may fail a run the model answered, record an answer twice, or end a worker process.
 * (PGlite has no connection to cut: PostgreSQL only.)
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';
import { startRunwayProcess, type RunwayProcess } from '../support/processes.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const RUNS = 300;
const BLIPS = 50;
const WORKERS = 2;
/** The workers' application_name, by which their server sessions are found. */
const WORKER_APP = 'runway-blip-worker';

/** A number in [min, max), from a fixed sequence: every run of the test sees the same mix. */
function sequence(seed: number) {
  let x = seed;
  return (min: number, max: number) => {
    x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
    return min + (x % (max - min));
  };
}

describe('connection blips while models answer (workers behind a proxy)', () => {
  let db: ScratchDatabase;
  let gateway: App;
  let proxy: TcpProxy;
  const workers: RunwayProcess[] = [];

  beforeAll(async () => {
    db = await createScratchDatabase();
    // The test's own view (and the runs' creator) reaches the database directly.
    gateway = await buildApp(
      { databaseUrl: db.url, pgliteDir: 'memory://', databasePoolSize: 10, runExpiresAfterSeconds: 600, production: false },
      { worker: false, logger: createLogger({ level: 'warn' }) },
    );
    const target = new URL(db.url!);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    workers.push(
      ...(await Promise.all(
        Array.from({ length: WORKERS }, () =>
          startRunwayProcess({ DATABASE_URL: proxy.url(db.url!), ROLE: 'worker', WORKER_CONCURRENCY: '8', PGAPPNAME: WORKER_APP }),
        ),
      )),
    );
  }, 60_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    await proxy?.close();
    await gateway?.stop();
    await db?.drop();
  });

  async function count(query: ReturnType<typeof sql>): Promise<Record<string, number>> {
    const result = await gateway.database.db.execute(query);
    const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { k: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.k, r.n]));
  }

  it(`${BLIPS} blips during ${RUNS} runs: no answered run failed, no answer recorded twice, no worker exit`, async () => {
    const { assistants, threads, runs } = gateway.services;
    const assistant = await assistants.create('default', {
      model: 'scripted',
      tools: [{ type: 'function', function: { name: 'get_weather' } }],
    });
    const random = sequence(7);
    // Model calls of 200-1500 ms on 16 slots: the 300 runs outlast the 50 blips (about
    // 15 s), and answers keep arriving throughout; one run in five answers with a tool
    // call (the run then waits for its outputs).
    await Promise.all(
      Array.from({ length: RUNS }, async (_, i) => {
        const work = `sleep ${random(200, 1500)}`;
        const content = i % 5 === 0 ? `${work}\ncall get_weather {"city":"Oslo"}` : work;
        const thread = await threads.create('default', { messages: [{ role: 'user', content }] });
        return runs.create('default', thread.id, { assistantId: assistant.id });
      }),
    );

    const active = async () =>
      (await count(sql`select 'active' as k, count(*)::int as n from runs where status in ('queued', 'in_progress', 'cancelling')`))[
        'active'
      ] ?? 0;

    // A blip every 100-300 ms, while runs are still in the workers' hands, in turn: every
    // connection closed and new ones refused for 20-150 ms (a restart), the same cut as
    // TCP resets (a network failure), and the server ending the workers' sessions itself
    // (57P01, as an administrator or a failover does).
    let blipsWithRunsActive = 0;
    for (let i = 0; i < BLIPS; i++) {
      await new Promise((r) => setTimeout(r, random(100, 300)));
      if ((await active()) > 0) blipsWithRunsActive++;
      if (i % 3 === 2) {
        await gateway.database.db.execute(
          sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${WORKER_APP}`,
        );
      } else {
        await proxy.interrupt(random(20, 150), i % 3 === 0 ? 'close' : 'reset');
      }
    }

    const settled = ['completed', 'failed', 'cancelled', 'expired', 'incomplete', 'requires_action'];
    const deadline = Date.now() + 60_000;
    let statuses: Record<string, number> = {};
    for (;;) {
      statuses = await count(sql`select status::text as k, count(*)::int as n from runs group by status`);
      const done = settled.reduce((sum, s) => sum + (statuses[s] ?? 0), 0);
      if (done === RUNS || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }

    const failed = await gateway.database.db.execute(sql`select id, last_error from runs where status = 'failed'`);
    const twice = await count(sql`
      select 'messages' as k, count(*)::int as n from (select run_id from messages where role = 'assistant' group by run_id having count(*) > 1) m
      union all select 'steps', count(*)::int from (select run_id from run_steps group by run_id having count(*) > 1) s`);
    const exits = workers.map((w) => w.child.exitCode ?? w.child.signalCode);

    expect({ blips: BLIPS, blipsWithRunsActive }).toEqual({ blips: BLIPS, blipsWithRunsActive: BLIPS });
    expect(Array.isArray(failed) ? failed : (failed as { rows: unknown[] }).rows).toEqual([]);
    expect(exits).toEqual(workers.map(() => null));
    expect(statuses).toEqual({ completed: RUNS - RUNS / 5, requires_action: RUNS / 5 });
    // A commit whose answer was lost and that was written again records nothing twice.
    expect(twice).toEqual({ messages: 0, steps: 0 });
    // Nothing escaped: no crash trace, no fatal line (an unhandled rejection logs one, then exits).
    for (const w of workers) {
      expect(w.stderr()).toBe('');
      expect(
        w
          .stdout()
          .split('\n')
          .filter((line) => line.includes('"level":60')),
      ).toEqual([]);
    }
  }, 110_000);
});

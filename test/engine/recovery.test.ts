/**
 * Durability: a worker killed mid-run loses nothing and records nothing twice; runs that
 * expired while no process was up are expired at the next start; two workers share a
 * queue without ever holding the same run at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, asc, eq, sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, unixNow, type App } from '../../src/app.js';
import { scriptedProvider } from '../../src/engine/providers/scripted.js';
import { Worker } from '../../src/engine/worker.js';
import { messages, runEvents, runSteps } from '../../src/db/schema.js';
import { createScratchDatabase, usingPostgres, type ScratchDatabase } from '../support/database.js';

const leftovers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const dispose of leftovers.splice(0).reverse()) await dispose();
});

async function app(db: ScratchDatabase | { url: undefined; dir: string }, options: Parameters<typeof buildApp>[1] = {}) {
  const built = await buildApp(
    {
      databaseUrl: db.url,
      pgliteDir: 'dir' in db ? db.dir : 'memory://',
      databasePoolSize: 10,
      runExpiresAfterSeconds: 600,
      production: false,
    },
    { worker: false, ...options },
  );
  leftovers.push(() => built.stop());
  return built;
}

async function scratch(): Promise<ScratchDatabase> {
  const db = await createScratchDatabase();
  leftovers.push(() => db.drop());
  return db;
}

/** Creates a run on a thread of its own whose last user message is `content`. */
async function queueRun(a: App, content: string) {
  const { assistants, threads, runs } = a.services;
  const assistant = await assistants.create('default', {
    model: 'scripted',
    tools: [{ type: 'function', function: { name: 'get_weather' } }],
  });
  const thread = await threads.create('default', { messages: [{ role: 'user', content }] });
  return runs.create('default', thread.id, { assistantId: assistant.id });
}

async function waitUntil(predicate: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function spawnWorker(databaseUrl: string, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, LOG_LEVEL: 'info', ROLE: 'worker', DATABASE_URL: databaseUrl, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', (d) => process.stderr.write(`[worker] ${d}`));
  leftovers.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  });
  return child;
}

describe.skipIf(!usingPostgres)('a worker killed with SIGKILL mid-run (PostgreSQL: needs two processes)', () => {
  it('is taken over after its lease lapses; no message, step or tool call recorded twice', async () => {
    const db = await scratch();
    const gateway = await app(db);
    // Half the runs answer, half call a tool; both work 3 s first, so the kill lands mid-call.
    const runs = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        queueRun(gateway, i % 2 ? 'sleep 3000\ncall get_weather {"city":"Oslo"}' : 'sleep 3000'),
      ),
    );
    const ids = runs.map((r) => r.id);
    const child = spawnWorker(db.url!, { LEASE_SECONDS: '2', WORKER_CONCURRENCY: '10' });
    const statuses = async () => Promise.all(ids.map(async (id) => (await gateway.engine.getById(id))!.status));
    await waitUntil(async () => (await statuses()).every((s) => s === 'in_progress'), 20_000, 'the child to claim every run');

    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    // A second worker finds the lapsed leases (2 s) and finishes the runs.
    await app(db, { worker: { leaseSeconds: 2, pollMs: 200 } });
    await waitUntil(async () => (await statuses()).every((s) => s === 'completed' || s === 'requires_action'), 30_000, 'the takeover');

    const sql_ = gateway.database.db;
    for (const [i, run] of runs.entries()) {
      const assistantMessages = await sql_.select().from(messages).where(and(eq(messages.threadId, run.threadId), eq(messages.role, 'assistant')));
      const steps = await sql_.select().from(runSteps).where(eq(runSteps.runId, run.id));
      const starts = await sql_.select().from(runEvents).where(and(eq(runEvents.runId, run.id), eq(runEvents.toStatus, 'in_progress')));
      expect(starts).toHaveLength(1); // taken over, not started again
      if (i % 2) {
        expect(assistantMessages).toHaveLength(0);
        expect(steps).toHaveLength(1);
        expect(steps[0]!.stepDetails).toMatchObject({ type: 'tool_calls' });
        expect((steps[0]!.stepDetails as { toolCalls: unknown[] }).toolCalls).toHaveLength(1);
      } else {
        expect(assistantMessages).toHaveLength(1);
        expect(steps.map((s) => s.type)).toEqual(['message_creation']);
      }
    }
  }, 60_000);
});

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
      .execute(sql`select count(*)::int as n from (select thread_id from messages where role = 'assistant' group by thread_id having count(*) > 1) d`)
      .then((r: any) => r.rows ?? r);
    expect(dupes.n).toBe(0);
    // One start per run (above) is one claim per run. And every claim ended with its run.
    const [takers] = await gw
      .execute(sql`select count(distinct worker_id)::int as n from runs where worker_id is not null`)
      .then((r: any) => r.rows ?? r);
    expect(takers.n).toBe(0); // claims end with the run: nothing left held
  }, 90_000);
});

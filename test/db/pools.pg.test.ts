/**
 * A process that is both gateway and worker (ROLE=all) keeps two pools: neither side can
 * take the connections the other needs. PostgreSQL only (PGlite is one connection).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Database } from '../../src/db/client.js';
import { createLogger } from '../../src/log.js';
import { drivers } from '../support/database.js';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const leftovers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const dispose of leftovers.splice(0).reverse()) await dispose();
});

/** Takes every connection of the pool, until the test ends. */
async function takeAll(database: Database, size: number): Promise<void> {
  if (database.driver !== 'postgres') throw new Error('PostgreSQL only');
  const reserved = await Promise.all(Array.from({ length: size }, () => database.client.reserve()));
  leftovers.push(async () => reserved.forEach((r) => r.release()));
}

const withDeadline = <T>(promise: Promise<T>, ms: number, what: string) =>
  Promise.race([promise, new Promise<never>((_, no) => setTimeout(() => no(new Error(`${what}: no answer in ${ms} ms`)), ms))]);

describe('ROLE=all: the gateway and the worker on pools of their own', () => {
  async function gatewayAndWorker(): Promise<TestApp> {
    const t = await startTestApp({ worker: true, databasePoolSize: 2, databaseEnginePoolSize: 2 });
    leftovers.push(() => t.close());
    return t;
  }

  it('the worker keeps completing runs while every gateway connection is taken', async () => {
    const t = await gatewayAndWorker();
    if (t.app.database.driver !== 'postgres') throw new Error('PostgreSQL only');
    // Another gateway (worker off) creates the runs: this process's gateway cannot.
    const other = await buildApp(
      {
        databaseUrl: t.app.database.url,
        pgliteDir: 'memory://',
        databasePoolSize: 2,
        runExpiresAfterSeconds: 600,
        production: false,
        redisUrl: drivers.redisUrl,
      },
      { worker: false, logger: createLogger({ level: 'warn' }) },
    );
    leftovers.push(() => other.stop());
    await takeAll(t.app.database, 2);

    const { assistants, threads, runs } = other.services;

    const engine = other.engine;
    const assistant = await assistants.create('default', { model: 'scripted' });
    const created = [];
    for (let i = 0; i < 5; i++) {
      const thread = await threads.create('default', { messages: [{ role: 'user', content: `hello ${i}` }] });
      created.push(await runs.create('default', thread.id, { assistantId: assistant.id }));
    }
    const deadline = Date.now() + 10_000;
    let statuses: string[] = [];
    while (Date.now() < deadline) {
      statuses = await Promise.all(created.map(async (r) => (await engine.getById(r.id))!.status));
      if (statuses.every((s) => s === 'completed')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(statuses).toEqual(Array(5).fill('completed'));
  }, 30_000);

  it('the gateway answers while every engine connection is taken', async () => {
    const t = await gatewayAndWorker();
    await takeAll(t.app.engineDatabase, 2);
    const assistantId = await withDeadline(createAssistant(t), 3000, 'createAssistant');
    const thread = await withDeadline(createThread(t), 3000, 'createThread');
    const run = await withDeadline(createRun(t, thread, { assistantId }), 3000, 'createRun');
    const read = await withDeadline(
      t.ok('query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status } }', { t: thread, r: run.id }),
      3000,
      'run',
    );
    // The worker cannot claim it: it has no connection.
    expect(read.run.status).toBe('QUEUED');
  }, 30_000);
});

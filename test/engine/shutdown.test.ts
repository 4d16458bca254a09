/**
 * SIGTERM: report not ready while still serving, stop accepting, stop claiming, let
 * in-flight runs finish within the grace period, close websockets with 1012 (service
 * restart) so that clients come back, exit 0. (A client coming back through a load
 * balancer to the process that stays: shutdown.pg.test.ts.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { createClient } from 'graphql-ws';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { openDatabase } from '../../src/db/client.js';
import { runs } from '../../src/db/schema.js';
import { createScratchDatabase } from '../support/database.js';
import { startRunwayProcess } from '../support/processes.js';

const leftovers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const dispose of leftovers.splice(0).reverse()) await dispose();
});

/**
 * `npm start`'s entry point in a child process, on its own database: a PostgreSQL
 * scratch database, or PGlite in a directory of its own (which a spec may open once the
 * process has exited).
 */
async function startRunway(env: Record<string, string>) {
  const db = await createScratchDatabase();
  leftovers.push(() => db.drop());
  const dir = await mkdtemp(join(tmpdir(), 'runway-shutdown-'));
  leftovers.push(() => rm(dir, { recursive: true, force: true }));
  const runway = await startRunwayProcess({ ...(db.url ? { DATABASE_URL: db.url } : { PGLITE_DIR: dir }), ...env });
  leftovers.push(() => runway.kill());
  /** The process's database, opened from here (after it exited, for PGlite). */
  const open = () => openDatabase({ url: db.url, pgliteDir: dir });
  return { child: runway.child, url: runway.url!, exited: runway.exited, open };
}

async function gql(url: string, query: string, variables: Record<string, unknown> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as any;
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

async function startRun(url: string, message: string) {
  const { createAssistant } = await gql(url, 'mutation { createAssistant(input: { model: "scripted" }) { id } }');
  const { createThread } = await gql(
    url,
    'mutation($m: String!) { createThread(input: { messages: [{ role: USER, content: $m }] }) { id } }',
    { m: message },
  );
  const { createRun } = await gql(url, 'mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }', {
    t: createThread.id,
    a: createAssistant.id,
  });
  const status = async () =>
    (await gql(url, 'query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status } }', { t: createThread.id, r: createRun.id })).run
      .status;
  return { id: createRun.id as string, status };
}

async function until(check: () => Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('SIGTERM', () => {
  it('lets an in-flight run finish, closes websockets with 1012 and exits 0', async () => {
    const runway = await startRunway({ SHUTDOWN_GRACE_SECONDS: '10' });
    let resolveClosed: (code: number) => void = () => {};
    const closed = new Promise<number>((resolve) => (resolveClosed = resolve));
    const client = createClient({
      url: runway.url.replace('http', 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      lazy: false, // the socket stays open after the subscription completes
      onNonLazyError: () => {}, // the 1012 close is expected; it is asserted below
      on: { closed: (e: any) => resolveClosed(e.code) },
    });
    leftovers.push(async () => {
      await client.dispose();
    });
    const run = await startRun(runway.url, 'sleep 1500');
    await until(async () => (await run.status()) === 'IN_PROGRESS');
    const statuses: string[] = [];
    const watched = new Promise<void>((resolve) =>
      client.subscribe(
        { query: 'subscription($r: ID!) { runStatusChanged(runId: $r) { status } }', variables: { r: run.id } },
        { next: (v: any) => void statuses.push(v.data.runStatusChanged.status), error: () => resolve(), complete: () => resolve() },
      ),
    );
    await until(async () => statuses.length > 0);

    runway.child.kill('SIGTERM');
    await watched;
    // The run was finished during the grace period and its end still reached the client.
    expect(statuses).toEqual(['IN_PROGRESS', 'COMPLETED']);
    expect(await closed).toBe(1012);
    expect(await runway.exited).toBe(0);
  }, 30_000);

  it('gives up a run that outlasts the grace period, releasing its claim, and still exits 0', async () => {
    const runway = await startRunway({ SHUTDOWN_GRACE_SECONDS: '1' });
    const run = await startRun(runway.url, 'sleep 60000');
    await until(async () => (await run.status()) === 'IN_PROGRESS');
    const started = Date.now();
    runway.child.kill('SIGTERM');
    expect(await runway.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(8000);
    // Released: its lease already lapsed, so another worker takes it over at its next
    // poll, not LEASE_SECONDS (30) later.
    const database = await runway.open();
    try {
      const [claim] = await database.db
        .select({ status: runs.status, lapsed: sql<boolean>`${runs.leaseExpiresAt} < now()` })
        .from(runs)
        .where(eq(runs.id, run.id));
      expect(claim).toEqual({ status: 'in_progress', lapsed: true });
    } finally {
      await database.close();
    }
  }, 30_000);
});

describe('restart', () => {
  it('answers /ready with 503 while it drains, still serving GraphQL, then stops accepting connections', async () => {
    const runway = await startRunway({ SHUTDOWN_DRAIN_SECONDS: '2' });
    const ready = () => fetch(runway.url.replace('/graphql', '/ready')).then((r) => r.status);
    expect(await ready()).toBe(200);

    const signalled = Date.now();
    runway.child.kill('SIGTERM');
    await until(async () => (await ready()) === 503, 1000);
    // Draining: a load balancer stops sending traffic, but what still comes is served.
    const { createAssistant } = await gql(runway.url, 'mutation { createAssistant(input: { model: "scripted" }) { id } }');
    expect(createAssistant.id).toMatch(/^asst_/);
    expect(await runway.exited).toBe(0);
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(2000);
    await expect(fetch(runway.url)).rejects.toThrow();
  }, 60_000);
});

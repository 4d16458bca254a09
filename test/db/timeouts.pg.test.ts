/**
 * The timeouts every PostgreSQL connection carries (statement, lock, idle in transaction),
 * and the one connection that goes without: the migrations'. PostgreSQL only (PGlite has
 * one session, and no timer to cancel a statement: see src/db/timeouts.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/client.js';
import { migrate, MIGRATION_LOCK_KEY } from '../../src/db/migrate.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { nodeCommand } from '../support/processes.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const CANCEL = 'mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { id status } }';

const leftovers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const dispose of leftovers.splice(0).reverse()) await dispose();
});

async function testApp(options: Parameters<typeof startTestApp>[0] = {}): Promise<TestApp> {
  const t = await startTestApp(options);
  leftovers.push(() => t.close());
  return t;
}

function urlOf(database: Database): string {
  if (database.driver !== 'postgres') throw new Error('PostgreSQL only');
  return database.url;
}

/** The session's setting, asked on one of the pool's connections. */
async function setting(database: Database, name: string): Promise<string> {
  if (database.driver !== 'postgres') throw new Error('PostgreSQL only');
  const [row] = await database.client.unsafe(`show ${name}`);
  return row![name] as string;
}

/** Starts test/support/hold-run-lock.ts and waits until it holds the run: its backend's pid. */
async function holdRunInAnotherProcess(env: Record<string, string>): Promise<{ child: ChildProcess; pid: number }> {
  const child = spawn(process.execPath, nodeCommand('test/support/hold-run-lock.ts'), {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((r) => child.once('exit', r));
  leftovers.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); // a stopped process too
    await exited;
  });
  const pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/locked (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error(`the lock holder exited: ${out}`)));
  });
  return { child, pid };
}

describe('database timeouts', () => {
  it('every connection of both pools carries the statement, lock and idle-in-transaction timeouts', async () => {
    const t = await testApp({ worker: true });
    for (const database of [t.app.database, t.app.engineDatabase]) {
      expect(await setting(database, 'statement_timeout')).toBe('10s');
      expect(await setting(database, 'lock_timeout')).toBe('1s');
      expect(await setting(database, 'idle_in_transaction_session_timeout')).toBe('10s');
    }
  });

  it('a process stopped inside a transaction loses it, and the run it held, after the idle-in-transaction timeout', async () => {
    const t = await testApp();
    const assistantId = await createAssistant(t);
    const thread = await createThread(t);
    const run = { t: thread, r: (await createRun(t, thread, { assistantId })).id as string };

    const { child, pid } = await holdRunInAnotherProcess({
      DATABASE_URL: urlOf(t.app.database),
      RUN_ID: run.r,
      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '1500',
    });
    child.kill('SIGSTOP');
    const stoppedAt = performance.now();
    // Held: a cancel cannot have the row.
    expect((await t.gql(CANCEL, run)).errors?.[0]?.extensions?.['code']).toBe('RESOURCE_BUSY');

    // The server ends the stopped process's session by itself (the process never runs again).
    const admin = postgres(urlOf(t.app.database), { max: 1, onnotice: () => {} });
    leftovers.push(() => admin.end());
    let endedAfter: number | undefined;
    while (performance.now() - stoppedAt < 6000) {
      const [row] = await admin`select count(*)::int as n from pg_stat_activity where pid = ${pid}`;
      if (row!.n === 0) {
        endedAfter = performance.now() - stoppedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`the stopped transaction's session ended ${endedAfter?.toFixed(0)} ms after the process was stopped (timeout 1500 ms)`);
    expect(endedAfter).toBeDefined();
    expect(endedAfter).toBeLessThan(4500);
    expect((await t.ok(CANCEL, run)).cancelRun.status).toBe('CANCELLED');
  }, 30_000);

  it('migrations wait for the advisory lock and run without a statement or lock timeout, whatever the pools have', async () => {
    const scratch: ScratchDatabase = await createScratchDatabase();
    leftovers.push(() => scratch.drop());
    const database = await openDatabase({ url: scratch.url, poolSize: 1, timeouts: { statementMs: 1, lockMs: 1 } });
    leftovers.push(() => database.close());
    // Another process is migrating: it holds the advisory lock for longer than both timeouts.
    const other = postgres(scratch.url!, { max: 1, onnotice: () => {} });
    leftovers.push(() => other.end());
    await other`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    setTimeout(() => void other`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`.execute(), 300);

    await migrate(database);
    const journal = JSON.parse(readFileSync('drizzle/meta/_journal.json', 'utf8')) as { entries: unknown[] };
    const [row] = await other`select count(*)::int as n from drizzle.__drizzle_migrations`;
    expect(row!.n).toBe(journal.entries.length);
  });
});

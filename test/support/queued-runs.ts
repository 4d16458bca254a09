/**
 * Runway apps built in this process (no server) on a file's scratch database or a PGlite
 * directory, worker processes beside them, and runs queued through the services: what
 * the recovery specs stop and start around a queue. What each helper starts goes on the
 * test's `leftovers`, which its spec disposes of after the test, last started first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { buildApp, type App } from '../../src/app.js';
import { createScratchDatabase, type ScratchDatabase } from './database.js';

export type Leftovers = (() => Promise<unknown>)[];

export async function buildAppOn(
  leftovers: Leftovers,
  db: ScratchDatabase | { url: undefined; dir: string },
  options: Parameters<typeof buildApp>[1] = {},
): Promise<App> {
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

export async function scratchDatabase(leftovers: Leftovers): Promise<ScratchDatabase> {
  const db = await createScratchDatabase();
  leftovers.push(() => db.drop());
  return db;
}

/** Creates a run on a thread of its own whose last user message is `content`. */
export async function queueRun(a: App, content: string) {
  const { assistants, threads, runs } = a.services;
  const assistant = await assistants.create('default', {
    model: 'scripted',
    tools: [{ type: 'function', function: { name: 'get_weather' } }],
  });
  const thread = await threads.create('default', { messages: [{ role: 'user', content }] });
  return runs.create('default', thread.id, { assistantId: assistant.id });
}

export async function waitUntil(predicate: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `npm start` as a worker (ROLE=worker) on `databaseUrl`; killed with SIGKILL after the test if still up. */
export function spawnWorker(leftovers: Leftovers, databaseUrl: string, env: Record<string, string> = {}): ChildProcess {
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

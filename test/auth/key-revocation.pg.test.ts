/**
 * The key commands (`npm run key:create`, `key:list`, `key:revoke`) against gateways
 * already running: two gateway processes on one PostgreSQL each refuse a revoked key
 * within a second, on HTTP and on the websockets it opened, which are closed with 4401.
 * (PGlite is one process's database: PostgreSQL only.)
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createScratchDatabase, drivers, type ScratchDatabase } from '../support/database.js';
import { nodeCommand, startRunwayProcess, type RunwayProcess } from '../support/processes.js';
import { eventually } from '../support/test-app.js';

const run = promisify(execFile);

/** One of the key commands, as `npm run key:<name>` runs it, on the test's database. */
async function keyCommand(name: string, args: string[], databaseUrl: string): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [...nodeCommand(`src/auth/key-${name}.ts`), ...args], {
    env: { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: drivers.redisUrl ?? '' },
  });
}

async function post(url: string, key: string): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: '{ __typename }' }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** A socket holding one subscription (a thread's run changes: it never ends by itself); `closed` is its close code. */
function holdSubscription(url: string, key: string, threadId: string) {
  const state: { closed?: number; connected: boolean; client?: Client } = { connected: false };
  state.client = createClient({
    url: url.replace('http', 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    connectionParams: { authorization: `Bearer ${key}` },
    on: {
      connected: () => void (state.connected = true),
      closed: (event) => void (state.closed = (event as { code: number }).code),
    },
    onNonLazyError: () => {},
  });
  state.client.subscribe(
    { query: 'subscription($t: ID!) { threadRunsChanged(threadId: $t) { runId status } }', variables: { t: threadId } },
    { next: () => {}, error: () => {}, complete: () => {} },
  );
  return state;
}

describe('revoking a stored key while two gateways run', () => {
  let db: ScratchDatabase;
  let a: RunwayProcess;
  let b: RunwayProcess;
  let keyId: string;
  let key: string;
  let other: string;
  beforeAll(async () => {
    db = await createScratchDatabase();
    const created = await keyCommand('create', ['--project', 'acme'], db.url!);
    key = created.stdout.trim();
    keyId = /Created API key (\S+)/.exec(created.stderr)![1]!;
    other = (await keyCommand('create', ['--project', 'acme'], db.url!)).stdout.trim();
    const env = { DATABASE_URL: db.url!, ROLE: 'gateway', ...(drivers.redisUrl ? { REDIS_URL: drivers.redisUrl } : {}) };
    a = await startRunwayProcess(env);
    b = await startRunwayProcess(env);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    await db?.drop();
  });

  it('key:list shows every key with its project and times, never the key', async () => {
    const { stdout } = await keyCommand('list', [], db.url!);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe('id\tproject\tcreated\trevoked');
    const mine = lines.find((l) => l.startsWith(keyId))!.split('\t');
    expect(mine).toEqual([keyId, 'acme', expect.stringMatching(/^\d{4}-\d\d-\d\dT/), '-']);
    expect(lines).toHaveLength(3);
    expect(stdout).not.toContain(key);
    expect(stdout).not.toContain(key.slice(3, 20));
  });

  it('refuses the key on both gateways within a second, and closes its open websockets with 4401', async () => {
    // The key is good on both, for HTTP and for a subscription held open on each.
    expect([await post(a.url!, key), await post(b.url!, key)]).toEqual([200, 200]);
    const res = await fetch(a.url!, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: 'mutation { createThread(input: {}) { id } }' }),
    });
    const threadId = ((await res.json()) as any).data.createThread.id as string;
    const sockets = [holdSubscription(a.url!, key, threadId), holdSubscription(b.url!, key, threadId)];
    const bystanders = [holdSubscription(a.url!, other, threadId), holdSubscription(b.url!, other, threadId)];
    await eventually(() => [...sockets, ...bystanders].every((s) => s.connected), 10_000);

    const { stderr } = await keyCommand('revoke', ['--id', keyId], db.url!);
    const revokedAt = Date.now();
    expect(stderr).toContain(`API key ${keyId} of project 'acme' is revoked`);

    await eventually(() => sockets.every((s) => s.closed !== undefined), 1000);
    const statuses = await Promise.all([post(a.url!, key), post(b.url!, key)]);
    expect(Date.now() - revokedAt).toBeLessThan(1000);
    expect(sockets.map((s) => s.closed)).toEqual([4401, 4401]);
    expect(statuses).toEqual([401, 401]);

    // Other keys of the project go on working, sockets and all.
    expect([await post(a.url!, other), await post(b.url!, other)]).toEqual([200, 200]);
    expect(bystanders.map((s) => s.closed)).toEqual([undefined, undefined]);
    // A new socket with the revoked key is refused at once.
    const late = holdSubscription(b.url!, key, threadId);
    await eventually(() => late.closed !== undefined, 5000);
    expect(late.closed).toBe(4401);
    expect((await keyCommand('list', [], db.url!)).stdout).toMatch(new RegExp(`${keyId}\\tacme\\t\\S+\\t\\d{4}-`));
    await Promise.all([...sockets, ...bystanders, late].map((s) => s.client!.dispose()));
  });

  it('key:revoke names an unknown id and changes nothing', async () => {
    await expect(keyCommand('revoke', ['--id', 'key_nope'], db.url!)).rejects.toMatchObject({
      stderr: expect.stringContaining('No API key key_nope'),
    });
    expect(await post(a.url!, other)).toBe(200);
  });
});

/**
 * Idempotency keys: a creating mutation retried with its key (its answer lost to a blip,
 * a timeout, a crash) gets the first result and creates nothing; the key with other input
 * is refused; keys are a project's own; they are swept after their time.
 */
import { count, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/auth/api-keys.js';
import { assistants, idempotencyKeys, messages, runs, threads } from '../../src/db/schema.js';
import { sweepKeys } from '../../src/idempotency/idempotency.js';
import { createAssistant, createThread } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/test-app.js';

const KEY_A = 'project-a-key-0123456789abcdef';
let t: TestApp;
let b: TestClient;

beforeAll(async () => {
  t = await startTestApp({ apiKeys: new Map([[KEY_A, 'projectA']]), apiKey: KEY_A });
  b = t.withKey((await createApiKey(t.app.database.db, 'projectB', 0)).key);
});
afterAll(async () => {
  await t?.close();
});

let keys = 0;
const newKey = () => `key-${Date.now()}-${++keys}`;

async function rows(table: typeof assistants | typeof threads | typeof runs | typeof messages, where?: ReturnType<typeof eq>) {
  const [row] = await t.app.database.db.select({ n: count() }).from(table).where(where);
  return row!.n;
}

const CREATE_RUN =
  'mutation($t: ID!, $a: ID!, $k: String, $m: Metadata) { createRun(threadId: $t, input: { assistantId: $a, metadata: $m }, idempotencyKey: $k) { id status } }';

describe('a retry with the same key and input', () => {
  it('createAssistant: returns the first assistant and creates no other', async () => {
    const k = newKey();
    const q = 'mutation($k: String) { createAssistant(input: { model: "scripted", name: "once" }, idempotencyKey: $k) { id name } }';
    const before = await rows(assistants);
    const first = (await t.ok(q, { k })).createAssistant;
    const again = (await t.ok(q, { k })).createAssistant;
    expect(again).toEqual(first);
    expect(await rows(assistants)).toBe(before + 1);
  });

  it('createThread: returns the first thread, its messages written once', async () => {
    const k = newKey();
    const q = 'mutation($k: String) { createThread(input: { messages: [{ role: USER, content: "hi" }] }, idempotencyKey: $k) { id } }';
    const first = (await t.ok(q, { k })).createThread.id;
    const again = (await t.ok(q, { k })).createThread.id;
    expect(again).toBe(first);
    expect(await rows(messages, eq(messages.threadId, first))).toBe(1);
  });

  it('createMessage: returns the first message', async () => {
    const thread = await createThread(t);
    const k = newKey();
    const q =
      'mutation($t: ID!, $k: String) { createMessage(threadId: $t, input: { role: USER, content: "more" }, idempotencyKey: $k) { id text } }';
    const first = (await t.ok(q, { t: thread, k })).createMessage;
    const again = (await t.ok(q, { t: thread, k })).createMessage;
    expect(again).toEqual(first);
    expect(await rows(messages, eq(messages.threadId, thread))).toBe(2);
  });

  it('createRun: returns the first run instead of THREAD_HAS_ACTIVE_RUN', async () => {
    const [a, thread, k] = [await createAssistant(t), await createThread(t), newKey()];
    const first = (await t.ok(CREATE_RUN, { t: thread, a, k })).createRun;
    const again = (await t.ok(CREATE_RUN, { t: thread, a, k })).createRun;
    expect(again.id).toBe(first.id);
    expect(await rows(runs, eq(runs.threadId, thread))).toBe(1);
  });

  it('createRun: ten at once with one key make one run, and every one of them gets it', async () => {
    const [a, thread, k] = [await createAssistant(t), await createThread(t), newKey()];
    const answers = await Promise.all(Array.from({ length: 10 }, () => t.gql(CREATE_RUN, { t: thread, a, k })));
    expect(answers.map((r) => r.errors)).toEqual(Array(10).fill(undefined));
    expect(new Set(answers.map((r) => r.data.createRun.id)).size).toBe(1);
    expect(await rows(runs, eq(runs.threadId, thread))).toBe(1);
  });

  it('createRun: a request whose answer was lost (the client gave up) is safe to send again', async () => {
    const [a, thread, k] = [await createAssistant(t), await createThread(t), newKey()];
    // The client hangs up at once: the server may or may not have committed the run.
    const gaveUp = new AbortController();
    const lost = fetch(t.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY_A}` },
      body: JSON.stringify({ query: CREATE_RUN, variables: { t: thread, a, k } }),
      signal: gaveUp.signal,
    }).catch(() => undefined);
    setImmediate(() => gaveUp.abort());
    await lost;
    const again = (await t.ok(CREATE_RUN, { t: thread, a, k })).createRun;
    const [only] = await t.app.database.db.select({ id: runs.id }).from(runs).where(eq(runs.threadId, thread));
    expect(again.id).toBe(only!.id);
    expect(await rows(runs, eq(runs.threadId, thread))).toBe(1);
  });

  it('submitToolOutputs: returns the run as it is now instead of INVALID_RUN_STATE', async () => {
    const [a, thread, k] = [await createAssistant(t), await createThread(t), newKey()];
    const run = (await t.ok(CREATE_RUN, { t: thread, a })).createRun.id;
    const call = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };
    await t.app.engine.transition(run, 'in_progress');
    await t.app.engine.requireAction(run, [call]);
    const q =
      'mutation($t: ID!, $r: ID!, $k: String) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: [{ toolCallId: "call_1", output: "sunny" }], idempotencyKey: $k) { id status version } }';
    const first = (await t.ok(q, { t: thread, r: run, k })).submitToolOutputs;
    expect(first.status).toBe('QUEUED');
    const again = await t.gql(q, { t: thread, r: run, k });
    expect(again.errors).toBeUndefined();
    expect(again.data.submitToolOutputs).toEqual(first);
    // Without the key, the same retry is refused: the run no longer waits for outputs.
    expect((await t.gql(q, { t: thread, r: run })).errors?.[0]?.extensions?.code).toBe('INVALID_RUN_STATE');
  });
});

describe('a key used again for something else', () => {
  it('is BAD_USER_INPUT naming idempotencyKey, and creates nothing', async () => {
    const [a, thread, k] = [await createAssistant(t), await createThread(t), newKey()];
    await t.ok(CREATE_RUN, { t: thread, a, k, m: { try: '1' } });
    const other = await t.gql(CREATE_RUN, { t: thread, a, k, m: { try: '2' } });
    expect(other.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', fields: ['idempotencyKey'] });
    const anotherMutation = await t.gql('mutation($k: String) { createThread(idempotencyKey: $k) { id } }', { k });
    expect(anotherMutation.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', fields: ['idempotencyKey'] });
    expect(anotherMutation.errors?.[0]?.message).toMatch(/createRun/);
    expect(await rows(runs, eq(runs.threadId, thread))).toBe(1);
  });

  it('refuses keys that are empty, too long or not visible ASCII', async () => {
    for (const k of ['', 'x'.repeat(256), 'with space', 'ключ']) {
      const res = await t.gql('mutation($k: String) { createThread(idempotencyKey: $k) { id } }', { k });
      expect(res.errors?.[0]?.extensions?.code, k).toBe('BAD_USER_INPUT');
    }
  });
});

describe('keys', () => {
  it("are a project's own: another project with the same key gets its own object", async () => {
    const k = newKey();
    const q = 'mutation($k: String) { createThread(idempotencyKey: $k) { id } }';
    const mine = (await t.ok(q, { k })).createThread.id;
    const theirs = (await b.ok(q, { k })).createThread.id;
    expect(theirs).not.toBe(mine);
    expect((await b.ok(q, { k })).createThread.id).toBe(theirs);
  });

  it('are swept once older than their time, and only those', async () => {
    const db = t.app.database.db;
    const now = Math.floor(Date.now() / 1000);
    const [old, fresh] = [newKey(), newKey()];
    await db.insert(idempotencyKeys).values([
      { projectId: 'projectA', key: old, operation: 'createThread', fingerprint: 'f', resultId: 'thread_x', createdAt: now - 25 * 3600 },
      { projectId: 'projectA', key: fresh, operation: 'createThread', fingerprint: 'f', resultId: 'thread_y', createdAt: now - 23 * 3600 },
    ]);
    expect(await sweepKeys(db, now - 24 * 3600)).toBeGreaterThanOrEqual(1);
    const left = (await db.select({ key: idempotencyKeys.key }).from(idempotencyKeys)).map((r) => r.key);
    expect(left).toContain(fresh);
    expect(left).not.toContain(old);
  });
});

/**
 * A thread after its creation: modifyThread replaces its metadata, deleteThread deletes
 * it with every row of it (in whichever table, found from the catalogue), never while a
 * run is active. Another project's thread reads exactly like one that does not exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.js';
import { createAssistant, createThread } from '../support/fixtures.js';
import { mentioned, rowsMentioning } from '../support/references.js';
import { startTestApp, until, type GraphQLResponse, type TestApp, type TestClient } from '../support/test-app.js';

const KEY_A = 'thread-lifecycle-a-key-012345';
const KEY_B = 'thread-lifecycle-b-key-012345';

let t: TestApp;
let b: TestClient;
let assistantId: string;
beforeAll(async () => {
  t = await startTestApp({
    worker: true,
    apiKeys: new Map([
      [KEY_A, 'projectA'],
      [KEY_B, 'projectB'],
    ]),
    apiKey: KEY_A,
  });
  b = t.withKey(KEY_B);
  assistantId = await createAssistant(t);
});
afterAll(async () => {
  await t?.close();
});

const MODIFY = 'mutation($t: ID!, $m: Metadata!) { modifyThread(threadId: $t, metadata: $m) { id object metadata } }';
const DELETE = 'mutation($t: ID!) { deleteThread(threadId: $t) { id object deleted } }';
const CREATE_THREAD = `mutation($input: CreateThreadInput, $k: String) { createThread(input: $input, idempotencyKey: $k) { id } }`;
const CREATE_MESSAGE = `mutation($t: ID!, $content: String!, $k: String) {
  createMessage(threadId: $t, input: { role: USER, content: $content }, idempotencyKey: $k) { id } }`;
const CREATE_RUN = `mutation($t: ID!, $a: ID!, $k: String) { createRun(threadId: $t, input: { assistantId: $a }, idempotencyKey: $k) { id } }`;
const SUBMIT = `mutation($t: ID!, $r: ID!, $c: ID!, $k: String) {
  submitToolOutputs(threadId: $t, runId: $r, toolOutputs: [{ toolCallId: $c, output: "12°C" }], idempotencyKey: $k) { status } }`;
const RUN = `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status requiredAction { submitToolOutputs { toolCalls { id } } } } }`;

function expectError(res: GraphQLResponse, code: string, messagePart?: string | RegExp) {
  expect(res.errors, JSON.stringify(res)).toHaveLength(1);
  expect(res.errors![0]!.extensions?.code).toBe(code);
  if (messagePart) expect(res.errors![0]!.message).toMatch(messagePart);
}

/** A response with these ids replaced, so that two responses compare by shape and message. */
function normalized(response: GraphQLResponse, ...ids: string[]): unknown {
  let text = JSON.stringify(response);
  for (const id of ids) text = text.replaceAll(id, '<id>');
  return JSON.parse(text);
}

async function startRun(threadId: string, key?: string): Promise<string> {
  return (await t.ok(CREATE_RUN, { t: threadId, a: assistantId, k: key })).createRun.id;
}

/** The run once it is in `status`. */
function reaches(threadId: string, runId: string, status: string): Promise<any> {
  return until(async () => {
    const { run } = await t.ok(RUN, { t: threadId, r: runId });
    return run.status === status ? run : undefined;
  });
}

/** The ids of everything a thread holds: itself, its messages, its runs and their steps. */
async function idsOf(threadId: string): Promise<string[]> {
  const data = await t.ok(
    `query($t: ID!) { thread(id: $t) { messages(first: 20) { nodes { id } } runs(first: 5) { nodes { id steps(first: 5) { nodes { id } } } } } }`,
    { t: threadId },
  );
  const runs = data.thread.runs.nodes;
  return [
    threadId,
    ...data.thread.messages.nodes.map((m: any) => m.id),
    ...runs.map((r: any) => r.id),
    ...runs.flatMap((r: any) => r.steps.nodes.map((s: any) => s.id)),
  ];
}

describe('modifyThread', () => {
  it('replaces the metadata whole', async () => {
    const { id } = (await t.ok(CREATE_THREAD, { input: { metadata: { a: '1', b: '2' } } })).createThread;
    expect((await t.ok(MODIFY, { t: id, m: { c: '3' } })).modifyThread).toEqual({ id, object: 'thread', metadata: { c: '3' } });
    expect((await t.ok(`query($t: ID!) { thread(id: $t) { metadata } }`, { t: id })).thread.metadata).toEqual({ c: '3' });
    expect((await t.ok(MODIFY, { t: id, m: {} })).modifyThread.metadata).toEqual({});
  });

  it('is allowed while a run is active', async () => {
    const threadId = await createThread(t, 'call get_weather {}');
    const runId = await startRun(threadId);
    await reaches(threadId, runId, 'REQUIRES_ACTION');
    expect((await t.ok(MODIFY, { t: threadId, m: { during: 'run' } })).modifyThread.metadata).toEqual({ during: 'run' });
    await t.ok('mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }', { t: threadId, r: runId });
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    ['17 keys', Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])), 'metadata'],
    ['a key of 65 characters', { ['k'.repeat(65)]: 'v' }, 'metadata'],
    ['a value of 513 characters', { k: 'v'.repeat(513) }, 'metadata.k'],
    ['a value that is no string', { k: 1 }, 'metadata.k'],
  ];
  for (const [what, metadata, field] of invalid) {
    it(`refuses metadata with ${what} with BAD_USER_INPUT naming ${field}, and changes nothing`, async () => {
      const { id } = (await t.ok(CREATE_THREAD, { input: { metadata: { kept: 'yes' } } })).createThread;
      expectError(await t.gql(MODIFY, { t: id, m: metadata }), 'BAD_USER_INPUT', field);
      expect((await t.ok(`query($t: ID!) { thread(id: $t) { metadata } }`, { t: id })).thread.metadata).toEqual({ kept: 'yes' });
    });
  }

  it("answers NOT_FOUND for an unknown thread, and for another project's exactly alike, changing nothing", async () => {
    const { id } = (await t.ok(CREATE_THREAD, { input: { metadata: { owner: 'A' } } })).createThread;
    const missing = newId('thread');
    const foreign = await b.gql(MODIFY, { t: id, m: { owner: 'B' } });
    expectError(foreign, 'NOT_FOUND', id);
    expect(normalized(foreign, id)).toEqual(normalized(await b.gql(MODIFY, { t: missing, m: { owner: 'B' } }), missing));
    expect((await t.ok(`query($t: ID!) { thread(id: $t) { metadata } }`, { t: id })).thread.metadata).toEqual({ owner: 'A' });
  });
});

describe('deleteThread', () => {
  it('deletes the thread and every row of it in every table (messages, runs, steps, events, idempotency keys), and nothing of another thread', async () => {
    const key = (what: string) => `thread-lifecycle-${what}-${Date.now()}`;
    const threadKey = key('thread');
    const threadInput = { metadata: { about: 'weather' }, messages: [{ role: 'USER', content: 'call get_weather {"city": "Oslo"}' }] };
    const threadId = (await t.ok(CREATE_THREAD, { input: threadInput, k: threadKey })).createThread.id;
    // A run that asks for a tool, gets its output (under a key) and completes: TOOL_CALLS
    // and MESSAGE_CREATION steps, status events, message and step events.
    const first = await startRun(threadId, key('run-1'));
    const waiting = await reaches(threadId, first, 'REQUIRES_ACTION');
    const call = waiting.requiredAction.submitToolOutputs.toolCalls[0].id;
    await t.ok(SUBMIT, { t: threadId, r: first, c: call, k: key('outputs') });
    await reaches(threadId, first, 'COMPLETED');
    // A message added later, and a second run that answers it.
    await t.ok(CREATE_MESSAGE, { t: threadId, content: 'And tomorrow?', k: key('message') });
    const second = await startRun(threadId, key('run-2'));
    await reaches(threadId, second, 'COMPLETED');
    // Another thread, with a run of its own, stays whole.
    const other = await createThread(t, 'Not this one');
    await reaches(other, await startRun(other), 'COMPLETED');

    const db = t.app.database.db;
    const ids = await idsOf(threadId);
    const otherIds = await idsOf(other);
    expect(ids.filter((id) => id.startsWith('step_')).length).toBeGreaterThanOrEqual(3);
    const before = mentioned(await rowsMentioning(db, ids));
    // The search finds the thread where it lives (it is not vacuous).
    expect(Object.keys(before)).toEqual(
      expect.arrayContaining([
        'public.threads',
        'public.messages',
        'public.runs',
        'public.run_events',
        'public.run_item_events',
        'public.run_steps',
        'public.idempotency_keys',
      ]),
    );
    const otherBefore = await rowsMentioning(db, otherIds);

    expect((await t.ok(DELETE, { t: threadId })).deleteThread).toEqual({ id: threadId, object: 'thread.deleted', deleted: true });

    expect(mentioned(await rowsMentioning(db, ids))).toEqual({});
    expect(await rowsMentioning(db, otherIds)).toEqual(otherBefore);

    // Through the API: gone everywhere, as an id that never existed.
    const [message] = ids.filter((id) => id.startsWith('msg_'));
    const gone = await t.ok(
      `query($t: ID!, $r: ID!, $m: ID!, $s: ID!) { thread(id: $t) { id } run(threadId: $t, runId: $r) { id }
        message(threadId: $t, messageId: $m) { id } nodes(ids: [$t, $r, $m, $s]) { id } }`,
      { t: threadId, r: first, m: message, s: ids.find((id) => id.startsWith('step_')) },
    );
    expect(gone).toEqual({ thread: null, run: null, message: null, nodes: [null, null, null, null] });
    expectError(await t.gql(`query($t: ID!) { runs(threadId: $t) { nodes { id } } }`, { t: threadId }), 'NOT_FOUND', threadId);
    expectError(await t.gql(CREATE_MESSAGE, { t: threadId, content: 'hello?' }), 'NOT_FOUND', threadId);
    expectError(await t.gql(DELETE, { t: threadId }), 'NOT_FOUND', threadId);

    // The key that created it went with it: a retry of that request creates a new thread.
    const again = (await t.ok(CREATE_THREAD, { input: threadInput, k: threadKey })).createThread.id;
    expect(again).not.toBe(threadId);
  });

  it('refuses a thread with an active run with THREAD_HAS_ACTIVE_RUN, saying to cancel the run first; once cancelled, deletes it', async () => {
    for (const [content, status] of [
      ['sleep 5000', 'IN_PROGRESS'],
      ['call get_weather {}', 'REQUIRES_ACTION'],
    ]) {
      const threadId = await createThread(t, content);
      const runId = await startRun(threadId);
      await reaches(threadId, runId, status!);
      const refused = await t.gql(DELETE, { t: threadId });
      expectError(refused, 'THREAD_HAS_ACTIVE_RUN', /cancel it.*before deleting the thread/);
      expect(refused.errors![0]!.extensions).toMatchObject({ threadId, runId });
      expect((await t.ok(`query($t: ID!) { thread(id: $t) { id } }`, { t: threadId })).thread).toEqual({ id: threadId });

      await t.ok('mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }', { t: threadId, r: runId });
      await reaches(threadId, runId, 'CANCELLED');
      expect((await t.ok(DELETE, { t: threadId })).deleteThread.deleted).toBe(true);
    }
  });

  it("answers NOT_FOUND for an unknown thread, and for another project's exactly alike, deleting nothing", async () => {
    const threadId = await createThread(t, 'of project A');
    const missing = newId('thread');
    const foreign = await b.gql(DELETE, { t: threadId });
    expectError(foreign, 'NOT_FOUND', threadId);
    expect(normalized(foreign, threadId)).toEqual(normalized(await b.gql(DELETE, { t: missing }), missing));
    const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages { nodes { text } } } }`, { t: threadId });
    expect(data.thread.messages.nodes).toEqual([{ text: 'of project A' }]);
  });

  it('races a createRun fairly: either the run is created and the delete refused, or the thread is deleted and the run NOT_FOUND', async () => {
    for (let round = 0; round < 5; round++) {
      const threadId = await createThread(t, 'sleep 5000');
      const [created, deleted] = await Promise.all([t.gql(CREATE_RUN, { t: threadId, a: assistantId }), t.gql(DELETE, { t: threadId })]);
      if (created.data?.createRun) {
        expectError(deleted, 'THREAD_HAS_ACTIVE_RUN');
        await t.ok('mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }', {
          t: threadId,
          r: created.data.createRun.id,
        });
      } else {
        expectError(created, 'NOT_FOUND', threadId);
        expect(deleted.data?.deleteThread).toEqual({ id: threadId, object: 'thread.deleted', deleted: true });
      }
    }
  });
});

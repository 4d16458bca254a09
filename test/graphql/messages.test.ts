/**
 * A thread's messages one by one: message(threadId, messageId), modifyMessage (metadata,
 * in any status), deleteMessage (never the message a run is writing, nor beside an active
 * run), and their lists (a run's messages only; the Assistants API's list in the service).
 * Another project's message reads exactly like one that does not exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.js';
import { createAssistant, createThread } from '../support/fixtures.js';
import { mentioned, rowsMentioning } from '../support/references.js';
import { collect, startTestApp, until, type GraphQLResponse, type TestApp, type TestClient } from '../support/test-app.js';

const KEY_A = 'messages-project-a-key-012345';
const KEY_B = 'messages-project-b-key-012345';

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

const FIELDS = 'id object threadId role text status runId assistantId metadata createdAt';
const GET = `query($t: ID!, $m: ID!) { message(threadId: $t, messageId: $m) { ${FIELDS} } }`;
const MODIFY = `mutation($t: ID!, $m: ID!, $meta: Metadata!) { modifyMessage(threadId: $t, messageId: $m, metadata: $meta) { ${FIELDS} } }`;
const DELETE = 'mutation($t: ID!, $m: ID!) { deleteMessage(threadId: $t, messageId: $m) { id object deleted } }';
const CREATE_MESSAGE = `mutation($t: ID!, $content: String!, $k: String) {
  createMessage(threadId: $t, input: { role: USER, content: $content, metadata: { n: "1" } }, idempotencyKey: $k) { ${FIELDS} } }`;
const MESSAGES = `query($t: ID!, $run: ID, $order: SortOrder) { thread(id: $t) { messages(runId: $run, order: $order) { nodes { id role text status } } } }`;

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

async function addMessage(threadId: string, content: string, key?: string): Promise<any> {
  return (await t.ok(CREATE_MESSAGE, { t: threadId, content, k: key })).createMessage;
}

async function startRun(threadId: string): Promise<string> {
  const data = await t.ok(`mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }`, {
    t: threadId,
    a: assistantId,
  });
  return data.createRun.id;
}

function reaches(threadId: string, runId: string, status: string): Promise<any> {
  return until(async () => {
    const { run } = await t.ok(`query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status } }`, { t: threadId, r: runId });
    return run.status === status ? run : undefined;
  });
}

/** The messages a run wrote, once there is one in `status`. */
function runMessage(threadId: string, runId: string, status: string): Promise<any> {
  return until(async () => {
    const data = await t.ok(MESSAGES, { t: threadId, run: runId });
    return data.thread.messages.nodes.find((m: any) => m.status === status);
  });
}

describe('message(threadId, messageId)', () => {
  it('reads one message of the thread', async () => {
    const threadId = await createThread(t, 'first');
    const added = await addMessage(threadId, 'second');
    expect((await t.ok(GET, { t: threadId, m: added.id })).message).toEqual({
      ...added,
      object: 'thread.message',
      role: 'USER',
      status: 'COMPLETED',
      metadata: { n: '1' },
    });
  });

  it("is null for an unknown message, a message of another thread, and another project's message alike", async () => {
    const threadId = await createThread(t, 'mine');
    const added = await addMessage(threadId, 'secret');
    const elsewhere = await createThread(t, 'elsewhere');
    expect((await t.ok(GET, { t: threadId, m: newId('msg') })).message).toBeNull();
    expect((await t.ok(GET, { t: elsewhere, m: added.id })).message).toBeNull();
    expect(await b.gql(GET, { t: threadId, m: added.id })).toEqual({ data: { message: null } });
  });
});

describe('modifyMessage', () => {
  it('replaces the metadata whole, and nothing else', async () => {
    const threadId = await createThread(t, 'hello');
    const added = await addMessage(threadId, 'note this');
    const data = await t.ok(MODIFY, { t: threadId, m: added.id, meta: { tag: 'important' } });
    expect(data.modifyMessage).toEqual({ ...added, metadata: { tag: 'important' } });
    expect((await t.ok(GET, { t: threadId, m: added.id })).message.metadata).toEqual({ tag: 'important' });
  });

  it('refuses bad metadata with BAD_USER_INPUT, as createMessage does, and changes nothing', async () => {
    const threadId = await createThread(t, 'hello');
    const added = await addMessage(threadId, 'keep');
    for (const [meta, field] of [
      [Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])), 'metadata'],
      [{ k: 'v'.repeat(513) }, 'metadata.k'],
      [{ k: 1 }, 'metadata.k'],
    ] as const) {
      expectError(await t.gql(MODIFY, { t: threadId, m: added.id, meta }), 'BAD_USER_INPUT', field);
    }
    expect((await t.ok(GET, { t: threadId, m: added.id })).message.metadata).toEqual({ n: '1' });
  });

  it("answers NOT_FOUND naming the thread or the message, and for another project's exactly as for an unknown one", async () => {
    const threadId = await createThread(t, 'hello');
    const added = await addMessage(threadId, 'mine');
    const elsewhere = await createThread(t, 'elsewhere');
    expectError(await t.gql(MODIFY, { t: threadId, m: 'msg_unknown', meta: {} }), 'NOT_FOUND', /message.*msg_unknown/);
    expectError(await t.gql(MODIFY, { t: elsewhere, m: added.id, meta: {} }), 'NOT_FOUND', /message/);
    expectError(await t.gql(MODIFY, { t: 'thread_unknown', m: added.id, meta: {} }), 'NOT_FOUND', /thread.*thread_unknown/);
    const missing = { t: newId('thread'), m: newId('msg') };
    const foreign = await b.gql(MODIFY, { t: threadId, m: added.id, meta: { by: 'B' } });
    expectError(foreign, 'NOT_FOUND');
    expect(normalized(foreign, threadId, added.id)).toEqual(
      normalized(await b.gql(MODIFY, { ...missing, meta: { by: 'B' } }), missing.t, missing.m),
    );
    expect((await t.ok(GET, { t: threadId, m: added.id })).message.metadata).toEqual({ n: '1' });
  });
});

describe('deleteMessage', () => {
  it('answers the deletion status; the message is gone, the others stay', async () => {
    const threadId = await createThread(t, 'first');
    const doomed = await addMessage(threadId, 'second');
    await addMessage(threadId, 'third');
    expect((await t.ok(DELETE, { t: threadId, m: doomed.id })).deleteMessage).toEqual({
      id: doomed.id,
      object: 'thread.message.deleted',
      deleted: true,
    });
    const data = await t.ok(`query($t: ID!, $m: ID!) { message(threadId: $t, messageId: $m) { id } node(id: $m) { id } }`, {
      t: threadId,
      m: doomed.id,
    });
    expect(data).toEqual({ message: null, node: null });
    expect((await t.ok(MESSAGES, { t: threadId, order: 'ASC' })).thread.messages.nodes.map((m: any) => m.text)).toEqual(['first', 'third']);
    expectError(await t.gql(DELETE, { t: threadId, m: doomed.id }), 'NOT_FOUND', doomed.id);
  });

  it("deletes a run's answer with its events: a replay of the run's events goes past it, and only the step that wrote it still names it", async () => {
    const threadId = await createThread(t, 'answer me');
    const runId = await startRun(threadId);
    await reaches(threadId, runId, 'COMPLETED');
    const answer = await runMessage(threadId, runId, 'COMPLETED');
    expect((await t.ok(DELETE, { t: threadId, m: answer.id })).deleteMessage.deleted).toBe(true);
    // As in the Assistants API, the MESSAGE_CREATION step keeps the id of what it wrote.
    expect(mentioned(await rowsMentioning(t.app.database.db, [answer.id]))).toEqual({ 'public.run_steps': 1 });
    const replay = collect(
      t.wsClient(),
      `subscription($t: ID!, $r: ID!, $after: String) { runEvents(threadId: $t, runId: $r, after: $after) {
        __typename ... on RunStatusEvent { status } ... on MessageEvent { kind } ... on RunStepEvent { step { status } } } }`,
      { t: threadId, r: runId, after: Buffer.from('e1:0:0').toString('base64url') },
    );
    await replay.done;
    expect(replay.events.every((e) => !e.errors)).toBe(true);
    const kinds = replay.events.map((e) => e.data!.runEvents.__typename);
    expect(kinds).not.toContain('MessageEvent');
    expect(kinds).toContain('RunStepEvent');
    expect(replay.events.at(-1)!.data!.runEvents).toEqual({ __typename: 'RunStatusEvent', status: 'COMPLETED' });
  });

  it('refuses the message its run is writing with MESSAGE_IN_PROGRESS, and any other beside the active run with THREAD_HAS_ACTIVE_RUN; once the run ends, both go', async () => {
    const threadId = await createThread(t, 'pace 200\nTell me a long story about the sea, the wind, the boats and the people on them.');
    const [question] = (await t.ok(MESSAGES, { t: threadId })).thread.messages.nodes;
    const runId = await startRun(threadId);
    const writing = await runMessage(threadId, runId, 'IN_PROGRESS');

    const refused = await t.gql(DELETE, { t: threadId, m: writing.id });
    expectError(refused, 'MESSAGE_IN_PROGRESS', /cancel the run/);
    expect(refused.errors![0]!.extensions).toMatchObject({ messageId: writing.id, runId });
    expectError(await t.gql(DELETE, { t: threadId, m: question.id }), 'THREAD_HAS_ACTIVE_RUN', /before deleting one of its messages/);
    // Its metadata may change meanwhile, and stays as the run goes on writing.
    await t.ok(MODIFY, { t: threadId, m: writing.id, meta: { seen: 'while written' } });

    await t.ok('mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }', { t: threadId, r: runId });
    await reaches(threadId, runId, 'CANCELLED');
    const ended = (await t.ok(GET, { t: threadId, m: writing.id })).message;
    expect(ended).toMatchObject({ status: 'INCOMPLETE', metadata: { seen: 'while written' } });
    expect((await t.ok(DELETE, { t: threadId, m: writing.id })).deleteMessage.deleted).toBe(true);
    expect((await t.ok(DELETE, { t: threadId, m: question.id })).deleteMessage.deleted).toBe(true);
    expect((await t.ok(MESSAGES, { t: threadId })).thread.messages.nodes).toEqual([]);
  });

  it("answers NOT_FOUND for unknown ids, and for another project's exactly alike, deleting nothing", async () => {
    const threadId = await createThread(t, 'of project A');
    const [mine] = (await t.ok(MESSAGES, { t: threadId })).thread.messages.nodes;
    const elsewhere = await createThread(t, 'elsewhere');
    expectError(await t.gql(DELETE, { t: elsewhere, m: mine.id }), 'NOT_FOUND', mine.id);
    expectError(await t.gql(DELETE, { t: 'thread_unknown', m: mine.id }), 'NOT_FOUND', 'thread_unknown');
    const missing = { t: newId('thread'), m: newId('msg') };
    const foreign = await b.gql(DELETE, { t: threadId, m: mine.id });
    expectError(foreign, 'NOT_FOUND');
    expect(normalized(foreign, threadId, mine.id)).toEqual(normalized(await b.gql(DELETE, missing), missing.t, missing.m));
    expect((await t.ok(MESSAGES, { t: threadId })).thread.messages.nodes.map((m: any) => m.id)).toEqual([mine.id]);
  });

  it('frees the idempotency key that created it: a retry with that key adds the message again', async () => {
    const threadId = await createThread(t, 'hello');
    const key = `message-${Date.now()}`;
    const first = await addMessage(threadId, 'once', key);
    expect((await addMessage(threadId, 'once', key)).id).toBe(first.id);
    await t.ok(DELETE, { t: threadId, m: first.id });
    expect((await addMessage(threadId, 'once', key)).id).not.toBe(first.id);
  });
});

describe("a thread's messages, listed", () => {
  let threadId = '';
  let runs: string[] = [];
  let all: string[] = []; // oldest first

  beforeAll(async () => {
    threadId = await createThread(t, 'one');
    runs = [];
    for (const content of ['two', 'three']) {
      const runId = await startRun(threadId);
      await reaches(threadId, runId, 'COMPLETED');
      runs.push(runId);
      await addMessage(threadId, content);
    }
    all = (await t.ok(MESSAGES, { t: threadId, order: 'ASC' })).thread.messages.nodes.map((m: any) => m.id);
    expect(all).toHaveLength(5); // one, echo, two, echo, three
  });

  it('Thread.messages(runId:) holds only the messages that run wrote', async () => {
    const data = await t.ok(MESSAGES, { t: threadId, run: runs[1] });
    expect(data.thread.messages.nodes).toEqual([{ id: all[3], role: 'ASSISTANT', text: 'echo: two', status: 'COMPLETED' }]);
    expect((await t.ok(MESSAGES, { t: threadId, run: newId('run') })).thread.messages.nodes).toEqual([]);
  });

  describe("as the Assistants API lists (the service's listThreadMessages)", () => {
    const list = (args: Record<string, unknown>, projectId = 'projectA', thread = threadId) =>
      t.app.services.threads
        .listThreadMessages(projectId, thread, args)
        .then((p) => ({ rows: p.rows.map((r) => r.id), hasMore: p.hasMore }));

    it('pages newest first by default, with after, before, order and limit', async () => {
      expect(await list({})).toEqual({ rows: [...all].reverse(), hasMore: false });
      expect(await list({ limit: 2 })).toEqual({ rows: [all[4], all[3]], hasMore: true });
      expect(await list({ limit: 2, after: all[3] })).toEqual({ rows: [all[2], all[1]], hasMore: true });
      expect(await list({ limit: 2, order: 'asc', after: all[2] })).toEqual({ rows: [all[3], all[4]], hasMore: false });
      expect(await list({ limit: 2, order: 'asc', before: all[3] })).toEqual({ rows: [all[1], all[2]], hasMore: true });
      expect(await list({ limit: 5, before: all[1] })).toEqual({ rows: [all[4], all[3], all[2]], hasMore: false });
    });

    it('filters by run (run_id)', async () => {
      expect(await list({ runId: runs[0] })).toEqual({ rows: [all[1]], hasMore: false });
    });

    it("answers NOT_FOUND for an unknown thread and another project's alike, and BAD_USER_INPUT for bad page arguments", async () => {
      await expect(list({}, 'projectB')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(threadId) });
      await expect(list({}, 'projectA', 'thread_unknown')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      for (const args of [{ limit: 0 }, { limit: 101 }, { after: 'run_01ABC' }]) {
        await expect(list(args), JSON.stringify(args)).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
      }
    });
  });
});

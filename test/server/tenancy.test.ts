/**
 * Tenancy: two projects' keys, every query, mutation and subscription tried across the
 * boundary, over HTTP (subscriptions as server-sent events) and over graphql-ws. Another
 * project's id must read exactly like an id that does not exist, and change nothing.
 */
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/auth/api-keys.js';
import { apiKeys } from '../../src/db/schema.js';
import { newId } from '../../src/domain/ids.js';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { eventually, startTestApp, type GraphQLResponse, type TestApp, type TestClient } from '../support/test-app.js';

const KEY_A = 'project-a-key-0123456789abcdef';
const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };

let t: TestApp;
let keyB: string;
let keyBId: string;
let a: TestClient;
let b: TestClient;
/** Project A's objects, which B tries to reach; and B's own, to combine them with. */
const A = { assistant: '', thread: '', message: '', run: '', step: '' };
const B = { assistant: '', thread: '' };

beforeAll(async () => {
  // A's key comes from API_KEYS, B's from the database: both kinds of key are confined.
  t = await startTestApp({ apiKeys: new Map([[KEY_A, 'projectA']]), apiKey: KEY_A, authCacheMs: 50 });
  ({ key: keyB, id: keyBId } = await createApiKey(t.app.database.db, 'projectB', 0));
  a = t.withKey(KEY_A);
  b = t.withKey(keyB);

  A.assistant = await createAssistant(t);
  A.thread = await createThread(t, 'a secret of project A');
  A.run = (await createRun(t, A.thread, { assistantId: A.assistant })).id;
  // requires_action, with an open TOOL_CALLS step: the run accepts every mutation.
  await t.app.engine.transition(A.run, 'in_progress');
  await t.app.engine.requireAction(A.run, [CALL]);
  A.step = (await t.app.engine.steps(A.run))[0]!.id;
  A.message = (await a.ok('query($t: ID!) { thread(id: $t) { messages { nodes { id } } } }', { t: A.thread })).thread.messages.nodes[0].id;

  B.assistant = (await b.ok('mutation { createAssistant(input: { model: "scripted" }) { id } }')).createAssistant.id;
  B.thread = (await b.ok('mutation { createThread { id } }')).createThread.id;
});
afterAll(async () => {
  await t?.close();
});

interface Probe {
  name: string;
  kind: 'query' | 'mutation' | 'subscription';
  query: string;
  /** Variables reaching for A's objects. */
  foreign: () => Record<string, unknown>;
  /** The same, with ids that exist nowhere. */
  missing: () => Record<string, unknown>;
}

const FROM_THE_START = Buffer.from('e1:0:0').toString('base64url');
const nowhere = { assistant: newId('asst'), thread: newId('thread'), message: newId('msg'), run: newId('run'), step: newId('step') };

const PROBES: Probe[] = [
  {
    name: 'assistant',
    kind: 'query',
    query: 'query($id: ID!) { assistant(id: $id) { id model instructions } }',
    foreign: () => ({ id: A.assistant }),
    missing: () => ({ id: nowhere.assistant }),
  },
  {
    name: 'thread',
    kind: 'query',
    query: 'query($id: ID!) { thread(id: $id) { id messages { edges { node { text } } } runs { edges { node { id } } } } }',
    foreign: () => ({ id: A.thread }),
    missing: () => ({ id: nowhere.thread }),
  },
  {
    name: 'run',
    kind: 'query',
    query: 'query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { id status } }',
    foreign: () => ({ t: A.thread, r: A.run }),
    missing: () => ({ t: nowhere.thread, r: nowhere.run }),
  },
  {
    name: "run (A's run through B's thread)",
    kind: 'query',
    query: 'query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { id status } }',
    foreign: () => ({ t: B.thread, r: A.run }),
    missing: () => ({ t: B.thread, r: nowhere.run }),
  },
  {
    name: 'runs',
    kind: 'query',
    query: 'query($t: ID!) { runs(threadId: $t, first: 5) { edges { node { id } } } }',
    foreign: () => ({ t: A.thread }),
    missing: () => ({ t: nowhere.thread }),
  },
  {
    name: 'runStep',
    kind: 'query',
    query: 'query($t: ID!, $r: ID!, $s: ID!) { runStep(threadId: $t, runId: $r, stepId: $s) { id } }',
    foreign: () => ({ t: A.thread, r: A.run, s: A.step }),
    missing: () => ({ t: nowhere.thread, r: nowhere.run, s: nowhere.step }),
  },
  {
    name: 'message',
    kind: 'query',
    query: 'query($t: ID!, $m: ID!) { message(threadId: $t, messageId: $m) { id text } }',
    foreign: () => ({ t: A.thread, m: A.message }),
    missing: () => ({ t: nowhere.thread, m: nowhere.message }),
  },
  {
    name: "message (A's message through B's thread)",
    kind: 'query',
    query: 'query($t: ID!, $m: ID!) { message(threadId: $t, messageId: $m) { id text } }',
    foreign: () => ({ t: B.thread, m: A.message }),
    missing: () => ({ t: B.thread, m: nowhere.message }),
  },
  ...(['assistant', 'thread', 'message', 'run', 'step'] as const).map((kind): Probe => ({
    name: `node (${kind})`,
    kind: 'query',
    query: `query($id: ID!) { node(id: $id) { id ... on Thread { messages { edges { node { text } } } } ... on Message { text } } }`,
    foreign: () => ({ id: A[kind] }),
    missing: () => ({ id: nowhere[kind] }),
  })),
  {
    name: "createRun (on A's thread)",
    kind: 'mutation',
    query: 'mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }',
    foreign: () => ({ t: A.thread, a: B.assistant }),
    missing: () => ({ t: nowhere.thread, a: B.assistant }),
  },
  {
    name: "createRun (with A's assistant)",
    kind: 'mutation',
    query: 'mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }',
    foreign: () => ({ t: B.thread, a: A.assistant }),
    missing: () => ({ t: B.thread, a: nowhere.assistant }),
  },
  {
    name: "createThreadAndRun (with A's assistant)",
    kind: 'mutation',
    query:
      'mutation($a: ID!) { createThreadAndRun(input: { assistantId: $a, thread: { messages: [{ role: USER, content: "hi" }] } }) { id } }',
    foreign: () => ({ a: A.assistant }),
    missing: () => ({ a: nowhere.assistant }),
  },
  {
    name: 'createMessage',
    kind: 'mutation',
    query: 'mutation($t: ID!) { createMessage(threadId: $t, input: { role: USER, content: "hi" }) { id } }',
    foreign: () => ({ t: A.thread }),
    missing: () => ({ t: nowhere.thread }),
  },
  {
    name: 'modifyRun',
    kind: 'mutation',
    query: 'mutation($t: ID!, $r: ID!) { modifyRun(threadId: $t, runId: $r, metadata: { owner: "B" }) { id } }',
    foreign: () => ({ t: A.thread, r: A.run }),
    missing: () => ({ t: nowhere.thread, r: nowhere.run }),
  },
  {
    name: 'cancelRun',
    kind: 'mutation',
    query: 'mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { id } }',
    foreign: () => ({ t: A.thread, r: A.run }),
    missing: () => ({ t: nowhere.thread, r: nowhere.run }),
  },
  {
    name: 'submitToolOutputs',
    kind: 'mutation',
    query: `mutation($t: ID!, $r: ID!) { submitToolOutputs(threadId: $t, runId: $r,
      toolOutputs: [{ toolCallId: "call_1", output: "from B" }]) { id } }`,
    foreign: () => ({ t: A.thread, r: A.run }),
    missing: () => ({ t: nowhere.thread, r: nowhere.run }),
  },
  {
    name: 'modifyAssistant',
    kind: 'mutation',
    query: 'mutation($a: ID!) { modifyAssistant(assistantId: $a, input: { instructions: "from B", metadata: { owner: "B" } }) { id } }',
    foreign: () => ({ a: A.assistant }),
    missing: () => ({ a: nowhere.assistant }),
  },
  {
    name: 'deleteAssistant',
    kind: 'mutation',
    query: 'mutation($a: ID!) { deleteAssistant(assistantId: $a) { id deleted } }',
    foreign: () => ({ a: A.assistant }),
    missing: () => ({ a: nowhere.assistant }),
  },
  {
    name: 'modifyThread',
    kind: 'mutation',
    query: 'mutation($t: ID!) { modifyThread(threadId: $t, metadata: { owner: "B" }) { id } }',
    foreign: () => ({ t: A.thread }),
    missing: () => ({ t: nowhere.thread }),
  },
  {
    name: 'deleteThread',
    kind: 'mutation',
    query: 'mutation($t: ID!) { deleteThread(threadId: $t) { id deleted } }',
    foreign: () => ({ t: A.thread }),
    missing: () => ({ t: nowhere.thread }),
  },
  {
    name: 'modifyMessage',
    kind: 'mutation',
    query: 'mutation($t: ID!, $m: ID!) { modifyMessage(threadId: $t, messageId: $m, metadata: { owner: "B" }) { id } }',
    foreign: () => ({ t: A.thread, m: A.message }),
    missing: () => ({ t: nowhere.thread, m: nowhere.message }),
  },
  {
    name: "modifyMessage (A's message through B's thread)",
    kind: 'mutation',
    query: 'mutation($t: ID!, $m: ID!) { modifyMessage(threadId: $t, messageId: $m, metadata: { owner: "B" }) { id } }',
    foreign: () => ({ t: B.thread, m: A.message }),
    missing: () => ({ t: B.thread, m: nowhere.message }),
  },
  {
    name: 'deleteMessage',
    kind: 'mutation',
    query: 'mutation($t: ID!, $m: ID!) { deleteMessage(threadId: $t, messageId: $m) { id deleted } }',
    foreign: () => ({ t: A.thread, m: A.message }),
    missing: () => ({ t: nowhere.thread, m: nowhere.message }),
  },
  {
    name: "deleteMessage (A's message through B's thread)",
    kind: 'mutation',
    query: 'mutation($t: ID!, $m: ID!) { deleteMessage(threadId: $t, messageId: $m) { id deleted } }',
    foreign: () => ({ t: B.thread, m: A.message }),
    missing: () => ({ t: B.thread, m: nowhere.message }),
  },
  {
    name: 'runStatusChanged',
    kind: 'subscription',
    query: 'subscription($r: ID!) { runStatusChanged(runId: $r) { runId status run { id } } }',
    foreign: () => ({ r: A.run }),
    missing: () => ({ r: nowhere.run }),
  },
  {
    name: 'threadRunsChanged',
    kind: 'subscription',
    // From the thread's first event, so that project A gets its history at once.
    query: 'subscription($t: ID!, $after: String) { threadRunsChanged(threadId: $t, after: $after) { runId status } }',
    foreign: () => ({ t: A.thread, after: FROM_THE_START }),
    missing: () => ({ t: nowhere.thread, after: FROM_THE_START }),
  },
];

/** The ids a response names, replaced, so that two responses compare by shape and message. */
function normalized(response: GraphQLResponse, ids: Record<string, unknown>): unknown {
  let text = JSON.stringify(response);
  for (const id of Object.values(ids)) if (typeof id === 'string') text = text.replaceAll(id, '<id>');
  return JSON.parse(text);
}

/** The first result of an operation over HTTP: JSON, or the first server-sent event. */
async function overHttp(key: string, query: string, variables: Record<string, unknown>): Promise<GraphQLResponse> {
  const res = await fetch(t.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'text/event-stream, application/graphql-response+json',
      authorization: `Bearer ${key}`,
    },
    body: JSON.stringify({ query, variables }),
  });
  expect(res.status).toBeLessThan(500);
  if (!res.headers.get('content-type')?.includes('text/event-stream')) return (await res.json()) as GraphQLResponse;
  const reader = res.body!.getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString('utf8');
    const event = /event: next\ndata: (.*)\n\n/.exec(text);
    if (event) {
      await reader.cancel();
      return JSON.parse(event[1]!) as GraphQLResponse;
    }
  }
  throw new Error(`the event stream ended without a result: ${text}`);
}

/** The first result of an operation over graphql-ws: its first payload, or its errors. */
function overWebsocket(client: TestClient, query: string, variables: Record<string, unknown>): Promise<GraphQLResponse> {
  const ws = client.wsClient();
  return new Promise((resolve) => {
    const stop = ws.subscribe(
      { query, variables },
      {
        next: (value) => {
          stop();
          resolve(value as GraphQLResponse);
        },
        error: (errors) => resolve({ errors: errors as GraphQLResponse['errors'] }),
        complete: () => {},
      },
    );
  });
}

const transports = [
  { name: 'HTTP', run: (key: string, p: Probe, v: Record<string, unknown>) => overHttp(key, p.query, v) },
  { name: 'websocket', run: (key: string, p: Probe, v: Record<string, unknown>) => overWebsocket(t.withKey(key), p.query, v) },
];

describe.each(transports)('across projects over $name', (transport) => {
  it.each(PROBES)("$name: another project's id reads exactly like one that does not exist", async (probe) => {
    const foreign = probe.foreign();
    const missing = probe.missing();
    const seenByB = await transport.run(keyB, probe, foreign);
    const nothingThere = await transport.run(keyB, probe, missing);
    expect(normalized(seenByB, foreign)).toEqual(normalized(nothingThere, missing));
    // ...and what they both say is "not found" (not, say, a validation error).
    const field = Object.keys(seenByB.data ?? {})[0];
    if (seenByB.errors?.length) expect(seenByB.errors.map((e) => e.extensions?.['code'])).toEqual(['NOT_FOUND']);
    else expect(seenByB.data![field!]).toBeNull();
    expect(JSON.stringify(seenByB)).not.toContain('a secret of project A');
  });

  it("nodes: another project's ids read exactly like ids that do not exist, and A reaches all of them", async () => {
    const probe: Probe = {
      name: 'nodes',
      kind: 'query',
      query: 'query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Message { text } } }',
      foreign: () => ({ ids: [A.assistant, A.thread, A.message, A.run, A.step] }),
      missing: () => ({ ids: [nowhere.assistant, nowhere.thread, nowhere.message, nowhere.run, nowhere.step] }),
    };
    const seenByB = await transport.run(keyB, probe, probe.foreign());
    expect(seenByB).toEqual({ data: { nodes: [null, null, null, null, null] } });
    expect(await transport.run(keyB, probe, probe.missing())).toEqual(seenByB);
    const mine = await transport.run(KEY_A, probe, probe.foreign());
    expect(mine.data!['nodes'].map((n: { id: string }) => n.id)).toEqual(probe.foreign()['ids']);
  });

  it.each(PROBES.filter((p) => p.kind !== 'mutation'))('$name: project A itself does reach its objects', async (probe) => {
    const mine = await transport.run(KEY_A, probe, probe.foreign());
    const alsoMine = probe.name.includes("B's thread"); // A's run (or message) is not in B's thread, for A either
    if (alsoMine) return expect(mine.data).toEqual({ [probe.name.split(' ')[0]!]: null });
    expect(mine.errors).toBeUndefined();
    expect(Object.values(mine.data!)[0]).not.toBeNull();
  });
});

describe('after every attempt of project B', () => {
  it("left project A's run, thread and messages untouched", async () => {
    const data = await a.ok(
      `query($t: ID!, $r: ID!) {
        run(threadId: $t, runId: $r) { status version metadata steps { edges { node { status } } } }
        thread(id: $t) { messages { edges { node { text } } } runs { edges { node { id } } } } }`,
      { t: A.thread, r: A.run },
    );
    expect(data.run).toMatchObject({ status: 'REQUIRES_ACTION', version: 3, metadata: {} });
    expect(data.run.steps.edges).toEqual([{ node: { status: 'IN_PROGRESS' } }]);
    expect(data.thread.messages.edges).toEqual([{ node: { text: 'a secret of project A' } }]);
    expect(data.thread.runs.edges).toEqual([{ node: { id: A.run } }]);
  });

  it("left project A's assistant and the metadata of its thread and message as they were", async () => {
    const data = await a.ok(
      `query($a: ID!, $t: ID!, $m: ID!) { assistant(id: $a) { instructions metadata } thread(id: $t) { metadata }
        message(threadId: $t, messageId: $m) { metadata } }`,
      { a: A.assistant, t: A.thread, m: A.message },
    );
    expect(data).toEqual({ assistant: { instructions: 'Be brief.', metadata: {} }, thread: { metadata: {} }, message: { metadata: {} } });
  });

  it("never delivers project A's events to project B's subscriptions", async () => {
    const seen: unknown[] = [];
    const ws = b.wsClient();
    const stop = ws.subscribe(
      { query: 'subscription($t: ID!) { threadRunsChanged(threadId: $t) { runId status } }', variables: { t: B.thread } },
      { next: (v) => void seen.push(v), error: () => {}, complete: () => {} },
    );
    await new Promise((r) => setTimeout(r, 100)); // subscribed
    await a.ok(`mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }`, { t: A.thread, r: A.run });
    const mine = (
      await b.ok('mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }', {
        t: B.thread,
        a: B.assistant,
      })
    ).createRun.id;
    await eventually(() => seen.length === 1);
    stop();
    expect(seen).toEqual([{ data: { threadRunsChanged: { runId: mine, status: 'QUEUED' } } }]);
  });
});

describe('a websocket whose key is revoked', () => {
  it('may not subscribe again: the key is checked at every subscribe, and the socket closes with 4401', async () => {
    const ws = b.wsClient();
    let closed: number | undefined;
    ws.on('closed', (e) => void (closed = (e as { code: number }).code));
    // A subscription that stays open keeps the socket open.
    ws.subscribe(
      { query: 'subscription($t: ID!) { threadRunsChanged(threadId: $t) { runId } }', variables: { t: B.thread } },
      { next: () => {}, error: () => {}, complete: () => {} },
    );
    const first = await new Promise<GraphQLResponse>((resolve) => {
      ws.subscribe({ query: '{ __typename }' }, { next: (v) => resolve(v as GraphQLResponse), error: () => {}, complete: () => {} });
    });
    expect(first.data).toEqual({ __typename: 'Query' });
    expect(closed).toBeUndefined();

    await t.app.database.db.update(apiKeys).set({ revokedAt: 1 }).where(eq(apiKeys.id, keyBId));
    await new Promise((r) => setTimeout(r, 100)); // past the authenticator's 50 ms cache
    ws.subscribe({ query: '{ __typename }' }, { next: () => {}, error: () => {}, complete: () => {} });
    await eventually(() => closed !== undefined);
    expect(closed).toBe(4401);
    expect(
      (
        await fetch(t.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${keyB}` },
          body: '{"query":"{ __typename }"}',
        })
      ).status,
    ).toBe(401);
  });
});

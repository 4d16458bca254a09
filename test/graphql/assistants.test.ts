/**
 * Assistants beyond create: the project's list (a Relay connection, and the Assistants
 * API's list in the service), modify and delete. Another project's assistant reads exactly
 * like one that does not exist; a run outlives its assistant; and a run is always made
 * from its assistant as it is, even when another process changed it.
 */
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assistants } from '../../src/db/schema.js';
import { newId } from '../../src/domain/ids.js';
import { createRun, createThread, RUN_FIELDS, WEATHER_TOOL } from '../support/fixtures.js';
import { startTestApp, until, type GraphQLResponse, type TestApp, type TestClient } from '../support/test-app.js';

const KEY_A = 'assistants-project-a-key-0123';
const KEY_B = 'assistants-project-b-key-0123';
const KEY_LIST = 'assistants-listing-key-012345';

let t: TestApp;
let a: TestClient;
let b: TestClient;
beforeAll(async () => {
  t = await startTestApp({
    worker: true,
    apiKeys: new Map([
      [KEY_A, 'projectA'],
      [KEY_B, 'projectB'],
      [KEY_LIST, 'listing'],
    ]),
    apiKey: KEY_A,
  });
  a = t.withKey(KEY_A);
  b = t.withKey(KEY_B);
});
afterAll(async () => {
  await t?.close();
});

const FIELDS = 'id object model name description instructions metadata tools { type function { name parameters } }';
const CREATE = `mutation($input: CreateAssistantInput!, $k: String) { createAssistant(input: $input, idempotencyKey: $k) { ${FIELDS} } }`;
const GET = `query($id: ID!) { assistant(id: $id) { ${FIELDS} } }`;
const MODIFY = `mutation($id: ID!, $input: ModifyAssistantInput!) { modifyAssistant(assistantId: $id, input: $input) { ${FIELDS} } }`;
const DELETE = 'mutation($id: ID!) { deleteAssistant(assistantId: $id) { id object deleted } }';
const LIST = `query($first: Int, $after: String, $last: Int, $before: String, $order: SortOrder) {
  assistants(first: $first, after: $after, last: $last, before: $before, order: $order) {
    nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`;

async function newAssistant(client: TestClient = a, input: Record<string, unknown> = {}): Promise<any> {
  const data = await client.ok(CREATE, {
    input: {
      model: 'scripted',
      name: 'Helper',
      description: 'Helps.',
      instructions: 'Be brief.',
      tools: [WEATHER_TOOL],
      metadata: { team: 'a' },
      ...input,
    },
  });
  return data.createAssistant;
}

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

describe('the list of assistants', () => {
  const listing = () => t.withKey(KEY_LIST);
  const service = () => t.app.services.assistants;
  const ids: string[] = []; // creation order

  beforeAll(async () => {
    for (let i = 0; i < 7; i++) ids.push((await newAssistant(listing(), { name: `n${i}` })).id);
  });

  it("holds the project's assistants only, newest first, 20 to a page", async () => {
    const data = await listing().ok(LIST);
    expect(data.assistants.nodes.map((n: any) => n.id)).toEqual([...ids].reverse());
    expect(data.assistants.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
    const ofB = await b.ok(LIST);
    expect(ofB.assistants.nodes.map((n: any) => n.id)).not.toContain(ids[0]);
  });

  it('pages forward and backward with cursors, in both orders', async () => {
    const first = await listing().ok(LIST, { first: 3, order: 'ASC' });
    expect(first.assistants.nodes.map((n: any) => n.id)).toEqual(ids.slice(0, 3));
    expect(first.assistants.pageInfo.hasNextPage).toBe(true);
    const next = await listing().ok(LIST, { first: 3, order: 'ASC', after: first.assistants.pageInfo.endCursor });
    expect(next.assistants.nodes.map((n: any) => n.id)).toEqual(ids.slice(3, 6));
    const back = await listing().ok(LIST, { last: 2, order: 'ASC', before: next.assistants.pageInfo.startCursor });
    expect(back.assistants.nodes.map((n: any) => n.id)).toEqual(ids.slice(1, 3));
    expect(back.assistants.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: true });
    const tail = await listing().ok(LIST, { last: 2, order: 'DESC' });
    expect(tail.assistants.nodes.map((n: any) => n.id)).toEqual([ids[1], ids[0]]);
  });

  it('refuses bad page arguments with BAD_USER_INPUT', async () => {
    for (const vars of [{ first: 0 }, { first: 101 }, { first: 1, last: 1 }, { after: 'not-a-cursor' }]) {
      expect((await listing().gql(LIST, vars)).errors?.[0]?.extensions?.code, JSON.stringify(vars)).toBe('BAD_USER_INPUT');
    }
  });

  describe("as the Assistants API lists (the service's listAssistants)", () => {
    it('walks every assistant once with `after`, newest first by default, `hasMore` until the last page', async () => {
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await service().listAssistants('listing', { limit: 3, after });
        seen.push(...page.rows.map((r) => r.id));
        if (!page.hasMore) break;
        after = page.rows.at(-1)!.id;
      }
      expect(seen).toEqual([...ids].reverse());
      expect((await service().listAssistants('listing', {})).rows.map((r) => r.id)).toEqual([...ids].reverse());
    });

    it('`before` gives the page just before an object, still in order, `hasMore` saying whether more lie before it', async () => {
      expect(await ids4(service().listAssistants('listing', { order: 'asc', before: ids[5], limit: 2 }))).toEqual({
        rows: [ids[3], ids[4]],
        hasMore: true,
      });
      expect(await ids4(service().listAssistants('listing', { order: 'asc', before: ids[2], limit: 5 }))).toEqual({
        rows: [ids[0], ids[1]],
        hasMore: false,
      });
      expect(await ids4(service().listAssistants('listing', { order: 'desc', before: ids[1], limit: 2 }))).toEqual({
        rows: [ids[3], ids[2]],
        hasMore: true,
      });
      // Both: the objects between them.
      expect(await ids4(service().listAssistants('listing', { order: 'asc', after: ids[1], before: ids[5], limit: 2 }))).toEqual({
        rows: [ids[2], ids[3]],
        hasMore: true,
      });
    });

    it('sees only its project, and refuses a limit out of 1-100 or a cursor that is no assistant id', async () => {
      expect((await service().listAssistants('projectB', { limit: 100 })).rows.map((r) => r.id)).not.toContain(ids[0]);
      for (const args of [{ limit: 0 }, { limit: 101 }, { limit: 1.5 }, { after: 'thread_01ABC' }, { before: 'nope' }]) {
        await expect(service().listAssistants('listing', args), JSON.stringify(args)).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
      }
    });
  });
});

async function ids4(page: Promise<{ rows: { id: string }[]; hasMore: boolean }>) {
  const { rows, hasMore } = await page;
  return { rows: rows.map((r) => r.id), hasMore };
}

describe('modifyAssistant', () => {
  it('changes only the fields given; metadata is replaced whole', async () => {
    const before = await newAssistant();
    const data = await a.ok(MODIFY, { id: before.id, input: { instructions: 'Be thorough.', metadata: { owner: 'ops' } } });
    expect(data.modifyAssistant).toEqual({ ...before, instructions: 'Be thorough.', metadata: { owner: 'ops' } });
    expect((await a.ok(GET, { id: before.id })).assistant).toEqual(data.modifyAssistant);
    const tools = [{ type: 'FUNCTION', function: { name: 'lookup', parameters: { type: 'object' } } }];
    const again = await a.ok(MODIFY, { id: before.id, input: { model: 'scripted-2', name: 'Other', description: 'Other.', tools } });
    expect(again.modifyAssistant).toMatchObject({
      model: 'scripted-2',
      name: 'Other',
      description: 'Other.',
      instructions: 'Be thorough.',
    });
    expect(again.modifyAssistant.tools).toEqual(tools);
  });

  it('clears name, description and instructions with null, and leaves no tools or metadata with null', async () => {
    const { id } = await newAssistant();
    const data = await a.ok(MODIFY, { id, input: { name: null, description: null, instructions: null, tools: null, metadata: null } });
    expect(data.modifyAssistant).toMatchObject({
      model: 'scripted',
      name: null,
      description: null,
      instructions: null,
      tools: [],
      metadata: {},
    });
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    ['an empty model', { model: '' }, 'input.model'],
    ['a null model', { model: null }, 'model'],
    ['a name of 257 characters', { name: 'n'.repeat(257) }, 'input.name'],
    ['a description of 513 characters', { description: 'd'.repeat(513) }, 'input.description'],
    ['21 tools', { tools: Array.from({ length: 21 }, (_, i) => ({ type: 'FUNCTION', function: { name: `f${i}` } })) }, 'input.tools'],
    ['a bad function name', { tools: [{ type: 'FUNCTION', function: { name: 'has space' } }] }, 'input.tools.0.function.name'],
    ['17 metadata keys', { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }, 'input.metadata'],
    ['a metadata value of 513 characters', { metadata: { k: 'v'.repeat(513) } }, 'input.metadata.k'],
  ];
  for (const [what, input, field] of invalid) {
    it(`refuses ${what} with BAD_USER_INPUT naming ${field}, as createAssistant does, and changes nothing`, async () => {
      const before = await newAssistant();
      expectError(await a.gql(MODIFY, { id: before.id, input }), 'BAD_USER_INPUT', field);
      expect((await a.ok(GET, { id: before.id })).assistant).toEqual(before);
    });
  }

  it("answers NOT_FOUND for an unknown id, and for another project's exactly alike, changing nothing", async () => {
    const before = await newAssistant();
    const missing = newId('asst');
    const foreign = await b.gql(MODIFY, { id: before.id, input: { name: 'taken' } });
    expectError(foreign, 'NOT_FOUND', before.id);
    expect(normalized(foreign, before.id)).toEqual(normalized(await b.gql(MODIFY, { id: missing, input: { name: 'taken' } }), missing));
    expect((await a.ok(GET, { id: before.id })).assistant).toEqual(before);
  });

  it('gives the runs made after it the new settings, and leaves those made before as they were made', async () => {
    const { id } = await newAssistant();
    const first = await createRun(t, await createThread(t), { assistantId: id });
    await a.ok(MODIFY, { id, input: { instructions: 'Answer in French.', model: 'scripted-fr' } });
    const second = await createRun(t, await createThread(t), { assistantId: id });
    expect(second).toMatchObject({ instructions: 'Answer in French.', model: 'scripted-fr' });
    const RUN = `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { instructions model } }`;
    expect((await a.ok(RUN, { t: first.threadId, r: first.id })).run).toEqual({ instructions: 'Be brief.', model: 'scripted' });
  });
});

describe('deleteAssistant', () => {
  it('answers the deletion status; the assistant is gone from its query, the node lookup and the list', async () => {
    const { id } = await newAssistant();
    expect((await a.ok(DELETE, { id })).deleteAssistant).toEqual({ id, object: 'assistant.deleted', deleted: true });
    const data = await a.ok(`query($id: ID!) { assistant(id: $id) { id } node(id: $id) { id } assistants(first: 100) { nodes { id } } }`, {
      id,
    });
    expect(data.assistant).toBeNull();
    expect(data.node).toBeNull();
    expect(data.assistants.nodes.map((n: any) => n.id)).not.toContain(id);
    expectError(await a.gql(DELETE, { id }), 'NOT_FOUND', id);
  });

  it("answers NOT_FOUND for an unknown id, and for another project's exactly alike, deleting nothing", async () => {
    const { id } = await newAssistant();
    const missing = newId('asst');
    const foreign = await b.gql(DELETE, { id });
    expectError(foreign, 'NOT_FOUND', id);
    expect(normalized(foreign, id)).toEqual(normalized(await b.gql(DELETE, { id: missing }), missing));
    expect((await a.ok(GET, { id })).assistant).not.toBeNull();
  });

  it('leaves its runs working: a run waiting for tool outputs takes them and completes, keeping its assistantId; a new run is NOT_FOUND', async () => {
    const { id } = await newAssistant();
    const threadId = await createThread(t, 'call get_weather {"city": "Oslo"}');
    const run = await createRun(t, threadId, { assistantId: id });
    const RUN = `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status assistantId
      requiredAction { submitToolOutputs { toolCalls { id } } } } thread(id: $t) { messages(order: ASC) { nodes { role text } } } }`;
    const read = () => a.ok(RUN, { t: threadId, r: run.id });
    const waiting = await until(async () => ((await read()).run.status === 'REQUIRES_ACTION' ? read() : undefined));
    await a.ok(DELETE, { id });
    const [call] = waiting.run.requiredAction.submitToolOutputs.toolCalls;
    await a.ok(
      `mutation($t: ID!, $r: ID!, $c: ID!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: [{ toolCallId: $c, output: "12°C" }]) { status } }`,
      { t: threadId, r: run.id, c: call.id },
    );
    const done = await until(async () => {
      const data = await read();
      return data.run.status === 'COMPLETED' ? data : undefined;
    });
    expect(done.run).toMatchObject({ status: 'COMPLETED', assistantId: id });
    expect(done.thread.messages.nodes).toEqual([
      { role: 'USER', text: 'call get_weather {"city": "Oslo"}' },
      { role: 'ASSISTANT', text: 'get_weather: 12°C' },
    ]);
    expectError(
      await a.gql(`mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }`, { t: threadId, a: id }),
      'NOT_FOUND',
      id,
    );
  });

  it('frees the idempotency key that created it: a retry with that key creates a new assistant', async () => {
    const key = `assistant-${Date.now()}`;
    const input = { model: 'scripted', name: 'Keyed' };
    const first = (await a.ok(CREATE, { input, k: key })).createAssistant;
    expect((await a.ok(CREATE, { input, k: key })).createAssistant.id).toBe(first.id);
    await a.ok(DELETE, { id: first.id });
    const second = (await a.ok(CREATE, { input, k: key })).createAssistant;
    expect(second.id).not.toBe(first.id);
  });
});

describe('a run is made from its assistant as it is now', () => {
  // This process keeps the assistants it read (createRun's first read is gone after the
  // first run). Another process's modify or delete reaches this database but not that
  // memory: here, the rows are changed behind the service's back, as such a process would.
  const elsewhere = {
    modify: (id: string, instructions: string) =>
      t.app.database.db
        .update(assistants)
        .set({ instructions, revision: sql`${assistants.revision} + 1` })
        .where(eq(assistants.id, id)),
    delete: (id: string) => t.app.database.db.delete(assistants).where(eq(assistants.id, id)),
  };
  const CREATE_THREAD_AND_RUN = `mutation($a: ID!) { createThreadAndRun(input: { assistantId: $a, thread: { messages: [{ role: USER, content: "hi" }] } }) { ${RUN_FIELDS} } }`;

  it('createRun and createThreadAndRun take the instructions another process gave it', async () => {
    const { id } = await newAssistant();
    expect((await createRun(t, await createThread(t), { assistantId: id })).instructions).toBe('Be brief.');
    await elsewhere.modify(id, 'Changed elsewhere.');
    expect((await createRun(t, await createThread(t), { assistantId: id })).instructions).toBe('Changed elsewhere.');
    await elsewhere.modify(id, 'Changed again.');
    expect((await a.ok(CREATE_THREAD_AND_RUN, { a: id })).createThreadAndRun.instructions).toBe('Changed again.');
  });

  it('createRun and createThreadAndRun answer NOT_FOUND once another process deleted it, and write nothing', async () => {
    const threadCount = async () =>
      (await t.app.database.db.execute(sql`select count(*)::int as n from threads`).then((r: any) => r.rows ?? r))[0].n as number;
    // Each assistant known to this process from a first run.
    const [one, two] = [(await newAssistant()).id, (await newAssistant()).id];
    for (const id of [one, two]) await createRun(t, await createThread(t), { assistantId: id });
    const threadId = await createThread(t);
    const threads = await threadCount();
    await elsewhere.delete(one);
    await elsewhere.delete(two);
    expectError(
      await a.gql(`mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }`, { t: threadId, a: one }),
      'NOT_FOUND',
      one,
    );
    expectError(await a.gql(CREATE_THREAD_AND_RUN, { a: two }), 'NOT_FOUND', two);
    expect(await threadCount()).toBe(threads);
    expect((await a.ok(`query($t: ID!) { runs(threadId: $t) { nodes { id } } }`, { t: threadId })).runs.nodes).toEqual([]);
  });
});

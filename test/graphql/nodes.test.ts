/**
 * Relay's global object identification: any object refetched by its id alone, with
 * `node(id:)` and `nodes(ids:)`. Ids are the ids the API always had (tenancy across
 * projects is in test/server/tenancy.test.ts).
 */
import { isObjectType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../../src/graphql/schema.js';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };

let t: TestApp;
/** One object of each kind of node. */
const ids = { assistant: '', thread: '', message: '', run: '', step: '' };

beforeAll(async () => {
  t = await startTestApp();
  ids.assistant = await createAssistant(t);
  ids.thread = await createThread(t, 'find me again');
  ids.run = (await createRun(t, ids.thread, { assistantId: ids.assistant })).id;
  await t.app.engine.transition(ids.run, 'in_progress');
  await t.app.engine.requireAction(ids.run, [CALL]);
  ids.step = (await t.app.engine.steps(ids.run))[0]!.id;
  const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages { nodes { id } } } }`, { t: ids.thread });
  ids.message = data.thread.messages.nodes[0].id;
});
afterAll(async () => {
  await t?.close();
});

const NODE = `query($id: ID!) { node(id: $id) { __typename id
  ... on Assistant { model }
  ... on Thread { messages { nodes { text } } }
  ... on Message { text threadId }
  ... on Run { status threadId steps { nodes { id } } }
  ... on RunStep { runId type } } }`;

describe('node(id:)', () => {
  it('refetches every kind of object by the id it always had', async () => {
    const found = async (id: string) => (await t.ok(NODE, { id })).node;
    expect(await found(ids.assistant)).toEqual({ __typename: 'Assistant', id: ids.assistant, model: 'scripted' });
    expect(await found(ids.thread)).toEqual({ __typename: 'Thread', id: ids.thread, messages: { nodes: [{ text: 'find me again' }] } });
    expect(await found(ids.message)).toEqual({ __typename: 'Message', id: ids.message, text: 'find me again', threadId: ids.thread });
    expect(await found(ids.run)).toEqual({
      __typename: 'Run',
      id: ids.run,
      status: 'REQUIRES_ACTION',
      threadId: ids.thread,
      steps: { nodes: [{ id: ids.step }] },
    });
    expect(await found(ids.step)).toEqual({ __typename: 'RunStep', id: ids.step, runId: ids.run, type: 'TOOL_CALLS' });
  });

  it('answers with the object the type-specific query answers with', async () => {
    const byNode = await t.ok(`query($id: ID!) { node(id: $id) { ... on Run { id version status model } } }`, { id: ids.run });
    const byRun = await t.ok(`query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { id version status model } }`, {
      t: ids.thread,
      r: ids.run,
    });
    expect(byNode.node).toEqual(byRun.run);
  });

  it('answers the same object to every field that asks for one id', async () => {
    const data = await t.ok(
      `query($r: ID!) { a: node(id: $r) { __typename id } b: node(id: $r) { __typename } c: nodes(ids: [$r]) { __typename } }`,
      {
        r: ids.run,
      },
    );
    expect(data).toEqual({ a: { __typename: 'Run', id: ids.run }, b: { __typename: 'Run' }, c: [{ __typename: 'Run' }] });
  });

  it('reads null for an id that names nothing: missing, malformed, or of no kind of node', async () => {
    for (const id of [
      'run_01J0000000000000000000000',
      'thread_missing',
      'garbage',
      '',
      '_run',
      'key_01J0000000000000000000000',
      'Run:1',
      'run\u0000x',
    ]) {
      const res = await t.gql(NODE, { id });
      expect(res, JSON.stringify(id)).toEqual({ data: { node: null } });
    }
  });
});

describe('nodes(ids:)', () => {
  it('answers in the order of the ids, repeats included, with null where there is nothing', async () => {
    const asked = [ids.step, ids.thread, 'run_missing', ids.run, 'garbage', ids.step, ids.assistant, ids.message];
    const data = await t.ok(`query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }`, { ids: asked });
    expect(data.nodes).toEqual([
      { __typename: 'RunStep', id: ids.step },
      { __typename: 'Thread', id: ids.thread },
      null,
      { __typename: 'Run', id: ids.run },
      null,
      { __typename: 'RunStep', id: ids.step },
      { __typename: 'Assistant', id: ids.assistant },
      { __typename: 'Message', id: ids.message },
    ]);
    expect(await t.ok(`{ nodes(ids: []) { id } }`)).toEqual({ nodes: [] });
  });

  it('takes at most 100 ids: more is BAD_USER_INPUT', async () => {
    const query = `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`;
    expect((await t.ok(query, { ids: Array(100).fill(ids.run) })).nodes).toHaveLength(100);
    const res = await t.gql(query, { ids: Array(101).fill(ids.run) });
    expect(res.errors?.map((e) => e.extensions?.['code'])).toEqual(['BAD_USER_INPUT']);
  });
});

it("reads a node's id as a plain field: no resolver, as ids are global already", () => {
  const node = schema.getType('Node')!;
  const types = Object.values(schema.getTypeMap()).filter((type) => isObjectType(type) && type.getInterfaces().includes(node as never));
  expect(types.map((type) => type.name).sort()).toEqual(['Assistant', 'Message', 'Run', 'RunStep', 'Thread']);
  for (const type of types) expect(isObjectType(type) && type.getFields()['id']!.resolve, type.name).toBeUndefined();
});

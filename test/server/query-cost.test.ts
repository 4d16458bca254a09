/**
 * The cost limit counts page sizes however they are given: written in the query, passed
 * in a variable, or left to a variable's default. The same document gets the same verdict
 * and the same code either way, on the fast path, yoga's path and the websocket.
 */
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { getOperationAST, parse, validate } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../../src/graphql/schema.js';
import { compileCost } from '../../src/server/query-cost.js';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
let threadId: string;
beforeAll(async () => {
  t = await startTestApp();
  threadId = await createThread(t);
  await createRun(t, threadId, { assistantId: await createAssistant(t) });
});
afterAll(async () => {
  await t?.close();
});

/** 15 aliases of a page of messages (the largest read an operation could ask for before). */
const aliased = (size: string) =>
  Array.from({ length: 15 }, (_, i) => `a${i}: thread(id: $t) { messages(first: ${size}) { nodes { text } } }`).join(' ');
const VARIABLE_PAGES = `query($t: ID!, $n: Int) { ${aliased('$n')} }`;
const LITERAL_PAGES = `query($t: ID!) { ${aliased('100')} }`;
const DEFAULT_PAGES = `query($t: ID!, $n: Int = 100) { ${aliased('$n')} }`;
const FRAGMENT_PAGES = `query($t: ID!, $n: Int) { ${Array.from({ length: 15 }, (_, i) => `a${i}: thread(id: $t) { ...Page }`).join(' ')} }
  fragment Page on Thread { messages(first: $n) { nodes { text } } }`;

type Answer = { status?: number; errors?: { message: string; extensions?: Record<string, any> }[]; data?: unknown };

async function overFastPath(query: string, variables: Record<string, unknown>): Promise<Answer> {
  const res = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, ...((await res.json()) as Answer) };
}

/** A batch is yoga's to serve (the fast path takes single operations only). */
async function overYoga(query: string, variables: Record<string, unknown>): Promise<Answer> {
  const res = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify([{ query, variables }]),
  });
  const [answer] = (await res.json()) as Answer[];
  return { status: res.status, ...answer };
}

function overWebsocket(query: string, variables: Record<string, unknown>): Promise<Answer> {
  const client = t.wsClient();
  return new Promise((resolve) =>
    client.subscribe(
      { query, variables },
      { next: (value) => resolve(value as Answer), error: (e) => resolve({ errors: e as never }), complete: () => {} },
    ),
  );
}

const transports = { 'the fast path': overFastPath, "yoga's path": overYoga, 'the websocket': overWebsocket };

describe('page sizes count the same written, in a variable, or by default', () => {
  for (const [name, send] of Object.entries(transports)) {
    it(`refuses 15 pages of 100 messages in every form, with one code (${name})`, async () => {
      const answers = [
        await send(LITERAL_PAGES, { t: threadId }),
        await send(VARIABLE_PAGES, { t: threadId, n: 100 }),
        await send(DEFAULT_PAGES, { t: threadId }),
        await send(FRAGMENT_PAGES, { t: threadId, n: 100 }),
      ];
      for (const answer of answers) {
        expect(answer.data ?? null).toBeNull();
        expect(answer.errors?.[0]?.message).toMatch(/cost limit of 5000 exceeded/i);
        expect(answer.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', maxCost: 5000 });
        expect(answer.errors?.[0]?.extensions?.['http']).toBeUndefined();
      }
      // The same pages, smaller, pass in every form.
      for (const answer of [
        await send(VARIABLE_PAGES, { t: threadId, n: 2 }),
        await send(FRAGMENT_PAGES, { t: threadId, n: 2 }),
        await send(DEFAULT_PAGES.replace('= 100', '= 2'), { t: threadId }),
      ]) {
        expect(answer.errors).toBeUndefined();
        expect((answer.data as any).a14.messages.nodes).toEqual([{ text: 'Hello' }]);
      }
    });

    it(`answers a page size over 100 with BAD_USER_INPUT naming it, written or in a variable (${name})`, async () => {
      const fields = 'nodes { id status model instructions createdAt } pageInfo { hasNextPage endCursor }';
      for (const answer of [
        await send(`query($t: ID!) { runs(threadId: $t, first: 500) { ${fields} } }`, { t: threadId }),
        await send(`query($t: ID!, $n: Int) { runs(threadId: $t, first: $n) { ${fields} } }`, { t: threadId, n: 500 }),
        await send(`query($t: ID!, $n: Int) { runs(threadId: $t, last: $n) { ${fields} } }`, { t: threadId, n: 1_000_000 }),
      ]) {
        expect(answer.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', fields: [expect.stringMatching(/^(first|last)$/)] });
        expect(answer.errors?.[0]?.message).toMatch(/(first|last): .*100/);
      }
    });
  }

  it('refuses with the status yoga gives a refused request, over HTTP', async () => {
    expect((await overFastPath(VARIABLE_PAGES, { t: threadId, n: 100 })).status).toBe(400);
    expect((await overFastPath(LITERAL_PAGES, { t: threadId })).status).toBe(400);
  });

  it('checks every request of a query text it has seen, not the first one only', async () => {
    expect((await overFastPath(VARIABLE_PAGES, { t: threadId, n: 1 })).errors).toBeUndefined();
    expect((await overFastPath(VARIABLE_PAGES, { t: threadId, n: 100 })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect((await overFastPath(VARIABLE_PAGES, { t: threadId, n: 1 })).errors).toBeUndefined();
  });
});

describe("the cost is graphql-armor's estimate", () => {
  /** What armor's rule finds for a document (its onAccept reports the cost). */
  function armorCost(query: string): number {
    let found = NaN;
    const rule = costLimitRule({ maxCost: Number.MAX_SAFE_INTEGER, onAccept: [(_context, { n }) => void (found = n)] });
    expect(validate(schema, parse(query), [rule])).toEqual([]);
    return found;
  }
  const ours = (query: string, variables: Record<string, unknown> = {}) => {
    const document = parse(query);
    return compileCost(document, getOperationAST(document)!)(variables);
  };

  const documents = [
    '{ __typename }',
    '{ thread(id: "t") { id metadata } }',
    LITERAL_PAGES.replace('query($t: ID!) ', '').replaceAll('$t', '"t"'),
    '{ thread(id: "t") { runs(first: 7) { nodes { id steps(last: 3) { nodes { id stepDetails { toolCalls { id function { output } } } } } } } } }',
    '{ thread(id: "t") { ...T ...T } } fragment T on Thread { id runs(first: 4) { ...R } } fragment R on RunConnection { nodes { id } pageInfo { hasNextPage } }',
    '{ thread(id: "t") { ... on Thread { messages(first: 9) { edges { cursor node { text } } } } } }',
    '{ runs(threadId: "t", first: 0) { nodes { id } } a: runs(threadId: "t", last: -5) { nodes { id } } }',
    '{ __schema { types { name fields { name } } } }',
  ];

  it('finds what armor finds for documents with page sizes written in them', () => {
    for (const query of documents) expect(ours(query), query).toBe(armorCost(query));
  });

  it('finds the same with the page sizes in variables, given or by default', () => {
    for (const query of documents) {
      let i = 0;
      const variables: Record<string, number> = {};
      const definitions: string[] = [];
      const withVariables = query.replace(/(first|last): (-?\d+)/g, (_, arg: string, size: string) => {
        const name = `v${i++}`;
        // Every other one by its default.
        if (i % 2) variables[name] = Number(size);
        definitions.push(i % 2 ? `$${name}: Int` : `$${name}: Int = ${size}`);
        return `${arg}: $${name}`;
      });
      if (!definitions.length) continue;
      const operation = withVariables.startsWith('{') ? `query(${definitions.join(', ')}) ${withVariables}` : withVariables;
      expect(ours(operation, variables), operation).toBe(armorCost(query));
    }
  });

  it('counts a page size up to the largest page served, beyond which the argument is refused', () => {
    const page = (n: number) => ours('query($n: Int) { runs(threadId: "t", first: $n) { nodes { id } } }', { n });
    expect(page(1_000_000)).toBe(page(100));
    expect(page(100)).toBeGreaterThan(page(99));
    expect(page(null as never)).toBe(page(1));
    expect(page('500' as never)).toBe(page(1)); // not an Int: coercion refuses it
  });

  it('counts nodes(ids:) once per id, written or in a variable', () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => `run_${i}`);
    const selection = '{ id ... on Run { status steps(first: 20) { nodes { id } } } }';
    const inVariable = (n: number) => ours(`query($ids: [ID!]!) { nodes(ids: $ids) ${selection} }`, { ids: ids(n) });
    const written = (n: number) => ours(`{ nodes(ids: ${JSON.stringify(ids(n))}) ${selection} }`);
    expect(inVariable(100)).toBe(100 * inVariable(1));
    expect(written(100)).toBe(inVariable(100));
    expect(written(40)).toBe(inVariable(40));
    // 15 aliases of 100 runs and their steps: over the limit, as 15 pages of 100 are.
    const aliasedNodes = `query($ids: [ID!]!) { ${Array.from({ length: 15 }, (_, i) => `a${i}: nodes(ids: $ids) ${selection}`).join(' ')} }`;
    expect(ours(aliasedNodes, { ids: ids(100) })).toBeGreaterThan(5000);
  });
});

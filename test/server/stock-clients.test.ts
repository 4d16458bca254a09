/**
 * The GraphQL clients people use, with their default settings, against a real Runway on a
 * real port: Apollo Client 4, urql 5 (its Client is @urql/core 6's: the React bindings
 * add nothing on the wire), with @urql/exchange-graphcache, and graphql-request. Each runs a query, a mutation and (where it speaks graphql-ws) a
 * subscription; graphcache runs with the `keys` docs/api.md documents, which must match
 * the schema's id-less types.
 */
import { readFileSync } from 'node:fs';
import { ApolloClient, ApolloLink, gql, HttpLink, InMemoryCache } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { cacheExchange as documentCache, Client as UrqlClient, fetchExchange, subscriptionExchange } from '@urql/core';
import { cacheExchange as graphcache } from '@urql/exchange-graphcache';
import { isObjectType, Kind, OperationTypeNode } from 'graphql';
import { GraphQLClient } from 'graphql-request';
import { createClient } from 'graphql-ws';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { schema } from '../../src/graphql/schema.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const KEY = 'stock-client-key-0123456789';
const authorization = `Bearer ${KEY}`;

let t: TestApp;
let open: TestApp;
let assistantId: string;
/** Methods of the HTTP requests the server got, in order. */
const methods: string[] = [];
const disposers: (() => unknown)[] = [];

beforeAll(async () => {
  [t, open] = await Promise.all([startTestApp({ apiKeys: new Map([[KEY, 'clients']]), apiKey: KEY, worker: true }), startTestApp()]);
  t.app.server.http.on('request', (req: { method?: string; url?: string }) => {
    if (req.url?.startsWith('/graphql')) methods.push(req.method ?? '');
  });
  const made = await t.ok<{ createAssistant: { id: string } }>(
    `mutation { createAssistant(input: {
      model: "scripted", name: "Stock", metadata: { team: "clients" }
      tools: [{ type: FUNCTION, function: { name: "get_weather", parameters: { type: "object" } } }]
    }) { id } }`,
  );
  assistantId = made.createAssistant.id;
});
afterEach(async () => {
  await Promise.all(disposers.splice(0).map((dispose) => dispose()));
  vi.restoreAllMocks();
});
afterAll(async () => {
  await Promise.all([t?.close(), open?.close()]);
});

const ASSISTANT = `query Assistant($id: ID!) { assistant(id: $id) { id name createdAt metadata } }`;
const CREATE_THREAD = `mutation CreateThread($meta: Metadata) { createThread(input: { metadata: $meta }) { id createdAt metadata } }`;
const RUN_STATUS = `subscription RunStatus($runId: ID!) { runStatusChanged(runId: $runId) { runId version status at } }`;

/** A thread with a run the worker completes, after a moment IN_PROGRESS: its ids. */
async function startRun(content = 'sleep 300') {
  const made = await t.ok<{ createThreadAndRun: { id: string; threadId: string } }>(
    `mutation($a: ID!, $c: String!) { createThreadAndRun(input: { assistantId: $a, thread: { messages: [{ role: USER, content: $c }] } }) { id threadId } }`,
    { a: assistantId, c: content },
  );
  return { runId: made.createThreadAndRun.id, threadId: made.createThreadAndRun.threadId };
}

function expectAssistant(assistant: { id: string; name: string; createdAt: unknown; metadata: unknown }) {
  expect(assistant).toMatchObject({ id: assistantId, name: 'Stock', metadata: { team: 'clients' } });
  expect(typeof assistant.createdAt).toBe('number');
}

function expectCompleted(statuses: string[]) {
  expect(statuses.at(-1)).toBe('COMPLETED');
  expect(statuses).toContain('IN_PROGRESS');
}

function wsClient(url: string) {
  const client = createClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization } });
  disposers.push(() => client.dispose());
  return client;
}

describe('Apollo Client 4', () => {
  function apollo() {
    const http = new HttpLink({ uri: t.url, headers: { authorization } });
    const ws = new GraphQLWsLink(wsClient(t.wsUrl));
    const link = ApolloLink.split(
      ({ query }) => {
        const definition = getMainDefinition(query);
        return definition.kind === Kind.OPERATION_DEFINITION && definition.operation === OperationTypeNode.SUBSCRIPTION;
      },
      ws,
      http,
    );
    const client = new ApolloClient({ link, cache: new InMemoryCache() });
    disposers.push(() => client.stop());
    return client;
  }

  it('runs a query, a mutation and a subscription over graphql-ws', async () => {
    const client = apollo();
    const query = await client.query({ query: gql(ASSISTANT), variables: { id: assistantId } });
    expectAssistant((query.data as { assistant: never }).assistant);

    const mutation = await client.mutate({ mutation: gql(CREATE_THREAD), variables: { meta: { origin: 'apollo' } } });
    expect((mutation.data as { createThread: { metadata: unknown } }).createThread.metadata).toEqual({ origin: 'apollo' });

    const { runId } = await startRun();
    const events = await lastValueFrom(client.subscribe({ query: gql(RUN_STATUS), variables: { runId } }).pipe(toArray()));
    expect(events.every((e) => !e.error)).toBe(true);
    expectCompleted(events.map((e) => (e.data as { runStatusChanged: { status: string } }).runStatusChanged.status));
  });
});

describe('urql', () => {
  function urql(url: string, exchanges = [documentCache, fetchExchange]) {
    return new UrqlClient({ url, exchanges, fetchOptions: { headers: { authorization } } });
  }

  it('sends its queries as GET, and a key authenticates them without a CSRF header', async () => {
    methods.length = 0;
    const result = await urql(t.url).query(ASSISTANT, { id: assistantId }).toPromise();
    expect(result.error).toBeUndefined();
    expectAssistant(result.data.assistant);
    expect(methods).toEqual(['GET']);
  });

  it('runs a mutation, and a subscription over graphql-ws', async () => {
    const ws = wsClient(t.wsUrl);
    const client = urql(t.url, [
      documentCache,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? '' }, sink) }),
        }),
      }),
    ]);
    const mutation = await client.mutation(CREATE_THREAD, { meta: { origin: 'urql' } }).toPromise();
    expect(mutation.error).toBeUndefined();
    expect(mutation.data.createThread.metadata).toEqual({ origin: 'urql' });

    const { runId } = await startRun();
    const statuses: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const { unsubscribe } = client.subscription(RUN_STATUS, { runId }).subscribe((result) => {
        if (result.error) return reject(result.error);
        statuses.push(result.data.runStatusChanged.status);
        if (result.data.runStatusChanged.status === 'COMPLETED') {
          unsubscribe();
          resolve();
        }
      });
    });
    expectCompleted(statuses);
  });

  it('without a key (open local mode) its GET is refused with CSRF_REQUIRED_HEADER, and served once it sends the header', async () => {
    const refused = await new UrqlClient({ url: open.url, exchanges: [fetchExchange] }).query('{ __typename }', {}).toPromise();
    expect(refused.error?.response?.status).toBe(403);
    expect(refused.error?.graphQLErrors[0]?.extensions).toEqual({ code: 'CSRF_REQUIRED_HEADER' });
    const served = await new UrqlClient({
      url: open.url,
      exchanges: [fetchExchange],
      fetchOptions: { headers: { 'x-graphql-yoga-csrf': '1' } },
    })
      .query('{ __typename }', {})
      .toPromise();
    expect(served.data).toEqual({ __typename: 'Query' });
  });
});

describe('graphcache', () => {
  /** The type names of the `keys` object docs/api.md shows. */
  function documentedKeyless(): string[] {
    const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
    const block = /```ts\nconst keys = \{\n([\s\S]*?)\n\};\n/.exec(doc);
    if (!block?.[1]) throw new Error('docs/api.md shows no graphcache `keys` object');
    return [...block[1].matchAll(/^\s*(\w+): \(\) => null,$/gm)].map((m) => m[1]!);
  }

  const ROOTS = new Set(['Query', 'Mutation', 'Subscription']);
  const keyless = Object.values(schema.getTypeMap())
    .filter((type) => isObjectType(type) && !type.name.startsWith('__') && !ROOTS.has(type.name) && !('id' in type.getFields()))
    .map((type) => type.name)
    .sort();

  it("docs/api.md's keys name exactly the schema's object types without an id", () => {
    expect(documentedKeyless().sort()).toEqual(keyless);
  });

  /** A run and an assistant with every embedded type filled in, read through graphcache. */
  async function readEverything(keys: Record<string, () => null> | undefined) {
    const warnings: string[] = [];
    vi.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void warnings.push(args.map(String).join(' ')));
    const client = new UrqlClient({
      url: t.url,
      exchanges: [graphcache(keys ? { keys } : {}), fetchExchange],
      fetchOptions: { headers: { authorization } },
    });
    const data = await client
      .query(
        `query Everything($threadId: ID!, $runId: ID!) {
          assistants(first: 5) { edges { cursor node { id tools { type function { name description parameters strict } } } } pageInfo { hasNextPage endCursor } }
          run(threadId: $threadId, runId: $runId) {
            id status createdAt
            requiredAction { type submitToolOutputs { toolCalls { id type function { name arguments } } } }
            toolChoice { mode function { name } }
            truncationStrategy { type lastMessages }
            responseFormat { type jsonSchema { name schema } }
            incompleteDetails { reason }
            lastError { code message }
            usage { promptTokens totalTokens }
            steps(first: 5) { edges { node { id stepDetails { type toolCalls { id type function { name arguments output } } messageCreation { messageId } } } } }
          }
          thread(id: $threadId) { id messages(first: 5) { nodes { id text } edges { cursor } } runs(first: 5) { nodes { id } edges { cursor } } }
        }`,
        await waitingRun(),
      )
      .toPromise();
    return { data, warnings };
  }

  /** A run that waits for a tool output: requiredAction and a tool-call step are filled. */
  async function waitingRun() {
    const made = await t.ok<{ createThreadAndRun: { id: string; threadId: string } }>(
      `mutation($a: ID!) { createThreadAndRun(input: {
        assistantId: $a, thread: { messages: [{ role: USER, content: "call get_weather {\\"city\\": \\"Paris\\"}" }] }
        toolChoice: { mode: AUTO }, truncationStrategy: { type: LAST_MESSAGES, lastMessages: 4 }
        responseFormat: { type: JSON_SCHEMA, jsonSchema: { name: "weather", schema: { type: "object" } } }
      }) { id threadId } }`,
      { a: assistantId },
    );
    const { id: runId, threadId } = made.createThreadAndRun;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 25))) {
      const read = await t.ok<{ run: { status: string } }>('query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status } }', {
        t: threadId,
        r: runId,
      });
      if (read.run.status === 'REQUIRES_ACTION') return { threadId, runId };
    }
    throw new Error('the run never asked for a tool output');
  }

  it('warns of keyless types without the keys, and of none with the documented keys', async () => {
    const bare = await readEverything(undefined);
    expect(bare.data.error).toBeUndefined();
    expect(bare.warnings.join('\n')).toMatch(/no key could be generated/i);

    const keys = Object.fromEntries(documentedKeyless().map((name) => [name, () => null]));
    const keyed = await readEverything(keys);
    expect(keyed.data.error).toBeUndefined();
    expect(keyed.data.data.run.requiredAction.submitToolOutputs.toolCalls[0].function.name).toBe('get_weather');
    expect(keyed.data.data.run.steps.edges[0].node.stepDetails.toolCalls[0].function.name).toBe('get_weather');
    expect(keyed.warnings).toEqual([]);
  });
});

describe('graphql-request', () => {
  it('runs a query and a mutation (it speaks no graphql-ws: subscriptions need another client)', async () => {
    const client = new GraphQLClient(t.url, { headers: { authorization } });
    const query = await client.request<{ assistant: never }>(ASSISTANT, { id: assistantId });
    expectAssistant(query.assistant);
    const mutation = await client.request<{ createThread: { metadata: unknown; createdAt: unknown } }>(CREATE_THREAD, {
      meta: { origin: 'graphql-request' },
    });
    expect(mutation.createThread.metadata).toEqual({ origin: 'graphql-request' });
    expect(typeof mutation.createThread.createdAt).toBe('number');
  });

  it('gets the error codes as a GraphQL error (here: metadata that breaks the rules)', async () => {
    const client = new GraphQLClient(t.url, { headers: { authorization } });
    const error = await client.request(CREATE_THREAD, { meta: { n: 1 } }).catch((e: unknown) => e);
    expect((error as { response: { errors: { extensions: unknown }[] } }).response.errors[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
    });
  });
});

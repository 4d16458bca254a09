/**
 * Per-key rate limits: mutations (each root field counts) and new subscriptions, over
 * HTTP and websockets, and REST writes against the same budget as mutations. In the
 * postgres+redis project the counters are in Redis.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { contractFetch } from '../support/openapi.js';
import { startTestApp, type GraphQLResponse, type TestApp, type TestClient } from '../support/test-app.js';

const KEY_A = 'rate-limit-key-a-0123456789';
const KEY_B = 'rate-limit-key-b-0123456789';
const KEY_C = 'rate-limit-key-c-0123456789';
const KEY_D = 'rate-limit-key-d-0123456789';
const CREATE_THREAD = 'mutation { createThread { id } }';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({
    apiKeys: new Map([
      [KEY_A, 'projectA'],
      [KEY_B, 'projectA'], // same project, its own budget: the limit is per key
      [KEY_C, 'projectC'],
      [KEY_D, 'projectD'],
    ]),
    rateLimits: { mutationsPerMinute: 3, subscriptionsPerMinute: 2 },
  });
});
afterAll(async () => {
  await t?.close();
});

const post = (key: string, query: string) =>
  fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query }),
  });

function firstResult(client: TestClient, query: string): Promise<GraphQLResponse> {
  return new Promise((resolve) => {
    client.wsClient().subscribe(
      { query },
      {
        next: (value) => resolve(value as GraphQLResponse),
        error: (errors) => resolve({ errors: errors as GraphQLResponse['errors'] }),
        complete: () => {},
      },
    );
  });
}

describe('mutations', () => {
  it('refuses the key past its budget with 429, Retry-After and RATE_LIMITED; queries and other keys go on', async () => {
    for (let i = 0; i < 3; i++) expect((await post(KEY_A, CREATE_THREAD)).status).toBe(200);
    const refused = await post(KEY_A, CREATE_THREAD);
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const body = (await refused.json()) as GraphQLResponse;
    expect(body.data).toBeUndefined();
    expect(body.errors).toEqual([
      {
        message: expect.stringMatching(/^Rate limit exceeded: at most 3 mutations per minute per API key\. Retry in \d+ s\.$/),
        extensions: { code: 'RATE_LIMITED', retryAfterSeconds: retryAfter, limit: 3 },
      },
    ]);

    expect((await post(KEY_A, '{ __typename }')).status).toBe(200); // reads are not limited
    expect((await post(KEY_B, CREATE_THREAD)).status).toBe(200); // another key, same project
    // Over the websocket, the same refusal (without the HTTP details).
    const overWs = await firstResult(t.withKey(KEY_A), CREATE_THREAD);
    expect(overWs.errors?.[0]?.extensions).toEqual({ code: 'RATE_LIMITED', retryAfterSeconds: expect.any(Number), limit: 3 });
  });

  it('counts every root field of a mutation, aliases included, refused ones too', async () => {
    const two = 'mutation { a: createThread { id } b: createThread { id } }';
    expect(((await (await post(KEY_C, two)).json()) as GraphQLResponse).errors).toBeUndefined(); // 2 of 3
    const refused = (await (await post(KEY_C, two)).json()) as GraphQLResponse; // 4 > 3
    expect(refused.errors?.[0]?.extensions?.['code']).toBe('RATE_LIMITED');
    // A refused operation counts too: hammering does not get a client through sooner.
    const single = await t.withKey(KEY_C).gql('mutation { createThread { id } }');
    expect(single.errors?.[0]?.extensions?.['code']).toBe('RATE_LIMITED');
  });
});

describe('REST writes', () => {
  // Every answer held to OpenAI's OpenAPI description.
  const contract = contractFetch();
  afterEach(() => expect(contract.violations).toEqual([]));
  const rest = (method: string, path: string) =>
    contract.fetch(`${t.restUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${KEY_D}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      body: method === 'POST' ? '{}' : undefined,
    });

  it('spend the budget of mutations (a write is one), and are refused past it with 429, Retry-After and the API’s error', async () => {
    expect((await post(KEY_D, CREATE_THREAD)).status).toBe(200);
    const threadId = ((await (await rest('POST', '/threads')).json()) as { id: string }).id; // 2 of 3
    expect((await post(KEY_D, CREATE_THREAD)).status).toBe(200); // 3 of 3
    const refused = await rest('POST', '/threads');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toEqual({
      error: {
        message: expect.stringMatching(/^Rate limit exceeded: at most 3 mutations per minute per API key\. Retry in \d+ s\.$/),
        type: 'requests',
        param: null,
        code: 'RATE_LIMITED',
      },
    });
    expect((await rest('GET', `/threads/${threadId}`)).status).toBe(200); // reads are not limited
    expect((await post(KEY_D, CREATE_THREAD)).status).toBe(429);
  });
});

describe('subscriptions', () => {
  it('refuses a new subscription past the budget, on the same socket as on a new one', async () => {
    const client = t.withKey(KEY_B);
    const ws = client.wsClient();
    const results: GraphQLResponse[] = [];
    const open = (query: string) =>
      new Promise<void>((resolve) => {
        ws.subscribe(
          { query, variables: { r: 'run_00000000000000000000000000' } },
          {
            next: (v) => void (results.push(v as GraphQLResponse), resolve()),
            error: (e) => void (results.push({ errors: e as never }), resolve()),
            complete: () => {},
          },
        );
      });
    // Two subscribes are within the budget (they fail as NOT_FOUND, but they were let in).
    await open('subscription($r: ID!) { runStatusChanged(runId: $r) { status } }');
    await open('subscription($r: ID!) { runStatusChanged(runId: $r) { status } }');
    await open('subscription($r: ID!) { runStatusChanged(runId: $r) { status } }');
    expect(results.map((r) => r.errors?.[0]?.extensions?.['code'])).toEqual(['NOT_FOUND', 'NOT_FOUND', 'RATE_LIMITED']);
    // Queries and mutations over a websocket are not subscriptions.
    expect((await firstResult(client, '{ __typename }')).data).toEqual({ __typename: 'Query' });
  });
});

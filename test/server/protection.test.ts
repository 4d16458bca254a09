/**
 * Hostile requests, on HTTP and on the websocket (which runs operations through yoga's
 * envelop, not its HTTP pipeline): query bombs, oversized bodies and batches, and what
 * production mode hides.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/test-app.js';

let dev: TestApp;
let prod: TestApp;
beforeAll(async () => {
  [dev, prod] = await Promise.all([
    startTestApp({ queryLimits: { maxDepth: 5 }, maxBodyBytes: 64 * 1024 }),
    startTestApp({ production: true }),
  ]);
});
afterAll(async () => {
  await Promise.all([dev?.close(), prod?.close()]);
});

const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: __typename`).join(' ')} }`;
const DEEP = `{ thread(id: "t") { runs { nodes { steps { nodes { stepDetails { toolCalls { id } } } } } } } }`;
const INTROSPECTION = `{ __schema { queryType { name } } }`;

async function overWebsocket(t: TestApp, query: string) {
  const client = t.wsClient();
  return new Promise<any>((resolve) =>
    client.subscribe({ query }, { next: resolve, error: (e) => resolve({ errors: e }), complete: () => {} }),
  );
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await work();
  return [result, performance.now() - started];
}

describe('query bombs are rejected quickly, with a code', () => {
  for (const [name, query] of [
    ['1,000 aliases', aliases(1000)],
    ['deep nesting', DEEP],
    ['1,000 directives', `{ __typename ${'@include(if: true) '.repeat(1000)} }`],
  ] as const) {
    it(`${name} over HTTP`, async () => {
      const [res, ms] = await timed(() => dev.gql(query));
      expect(res.data ?? null).toBeNull();
      expect(res.errors?.[0]?.extensions?.code).toMatch(/GRAPHQL_VALIDATION_FAILED|GRAPHQL_PARSE_FAILED|BAD_USER_INPUT/);
      expect(ms).toBeLessThan(1000);
    });

    it(`${name} over the websocket`, async () => {
      const [res, ms] = await timed(() => overWebsocket(dev, query));
      expect(JSON.stringify(res.errors)).toMatch(/Syntax Error|Query depth|Aliases|Directives|Token/i);
      expect(JSON.stringify(res.errors)).toMatch(/GRAPHQL_VALIDATION_FAILED|GRAPHQL_PARSE_FAILED/);
      expect(ms).toBeLessThan(1000);
    });
  }

  it('a huge page size is refused before any query runs, written or in a variable', async () => {
    const res = await dev.gql('{ runs(threadId: "t", first: 1000000) { nodes { id } } }');
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', fields: ['first'] });
    const viaVariable = await dev.gql('query($n: Int) { runs(threadId: "t", first: $n) { nodes { id } } }', { n: 1000000 });
    expect(viaVariable.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', fields: ['first'] });
  });
});

describe('each query text is checked once, and what was found holds for every request', () => {
  const post = (body: object) =>
    rawPost(dev, JSON.stringify(body), { 'content-type': 'application/json', accept: 'application/graphql-response+json' });

  it('a rejected query is rejected again, with the same status and code, every time', async () => {
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await post({ query: DEEP }));
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body).errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    }
  });

  it('a document of several operations runs the one each request names, and refuses a name it lacks', async () => {
    const query = 'query A { a: __typename } query B { b: __typename }';
    for (const [name, expected] of [
      ['A', { a: 'Query' }],
      ['B', { b: 'Query' }],
      ['A', { a: 'Query' }],
    ] as const) {
      const answer = await post({ query, operationName: name });
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toEqual({ data: expected });
    }
    for (let i = 0; i < 2; i++) {
      const missing = await post({ query, operationName: 'C' });
      expect(missing.status).toBe(400);
      expect(JSON.parse(missing.body).errors[0].message).toMatch(/Could not determine what operation to execute/);
    }
  });
});

function rawPost(t: TestApp, body: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const url = new URL(t.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('HTTP limits', () => {
  it('refuses a body over the limit with 413', async () => {
    const body = JSON.stringify({ query: '{ __typename }', variables: { junk: 'x'.repeat(100_000) } });
    const res = await rawPost(dev, body, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it("refuses a body in another charset than UTF-8 with 415, on the fast path and on yoga's path", async () => {
    const body = JSON.stringify({ query: '{ __typename }' });
    const send = (contentType: string, accept: string) =>
      rawPost(dev, body, { 'content-type': contentType, accept, 'content-length': String(Buffer.byteLength(body)) });
    for (const contentType of [
      'application/json; charset=latin1',
      'application/json;charset="ISO-8859-1"',
      'application/json; charset=utf-16',
      'application/graphql-response+json; charset=latin1',
    ]) {
      // A JSON answer is the fast path's; an SSE answer is yoga's.
      for (const accept of ['application/json', 'text/event-stream']) {
        const answer = await send(contentType, accept);
        expect(answer.status, `${contentType} ${accept}`).toBe(415);
        expect(JSON.parse(answer.body).errors[0].extensions.code).toBe('UNSUPPORTED_MEDIA_TYPE');
      }
    }
    // UTF-8, in any spelling, or no charset: served.
    for (const contentType of [
      'application/json',
      'application/json; charset=utf-8',
      'application/json; charset="UTF-8"',
      'application/json;charset=utf8',
    ]) {
      const answer = await send(contentType, 'application/json');
      expect(answer.status, contentType).toBe(200);
      expect(JSON.parse(answer.body)).toEqual({ data: { __typename: 'Query' } });
    }
  });

  it('refuses a body of unknown length with 411', async () => {
    const res = await rawPost(dev, JSON.stringify({ query: '{ __typename }' }), {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
    });
    expect(res.status).toBe(411);
  });

  it('answers a batch of up to 10 operations, and refuses 11', async () => {
    const post = (n: number) =>
      fetch(dev.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(Array.from({ length: n }, () => ({ query: '{ __typename }' }))),
      });
    expect(await (await post(2)).json()).toEqual([{ data: { __typename: 'Query' } }, { data: { __typename: 'Query' } }]);
    const tooMany = await post(11);
    expect(tooMany.status).toBeGreaterThanOrEqual(400);
  });

  it('refuses a cross-site simple request without the CSRF header, with CSRF_REQUIRED_HEADER', async () => {
    const body = JSON.stringify({ query: '{ __typename }' });
    const res = await rawPost(dev, body, { 'content-type': 'text/plain', 'content-length': String(body.length) });
    expect(res.status).toBe(403);
    const [error] = JSON.parse(res.body).errors;
    expect(error.extensions).toEqual({ code: 'CSRF_REQUIRED_HEADER' });
    expect(error.message).toMatch(/CSRF/);
    // A GET without the header is refused alike; with it, served.
    const get = await fetch(`${dev.url}?query=${encodeURIComponent('{ __typename }')}`);
    expect(get.status).toBe(403);
    expect(((await get.json()) as any).errors[0].extensions.code).toBe('CSRF_REQUIRED_HEADER');
    const allowed = await fetch(`${dev.url}?query=${encodeURIComponent('{ __typename }')}`, { headers: { 'x-graphql-yoga-csrf': '1' } });
    expect(await allowed.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it('serves /health and /ready', async () => {
    const base = dev.url.replace('/graphql', '');
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });
});

describe('NODE_ENV=production', () => {
  it('refuses introspection over HTTP and over the websocket', async () => {
    const http = await prod.gql(INTROSPECTION);
    expect(http.errors?.[0]?.message).toMatch(/introspection/i);
    const ws = await overWebsocket(prod, INTROSPECTION);
    expect(JSON.stringify(ws.errors)).toMatch(/introspection/i);
    expect((await dev.gql(INTROSPECTION)).data).toEqual({ __schema: { queryType: { name: 'Query' } } });
  });

  it('serves no GraphiQL and suggests no field names', async () => {
    const page = await fetch(prod.url, { headers: { accept: 'text/html' } });
    expect(await page.text()).not.toMatch(/graphiql/i);
    const typo = await prod.gql('{ rn(threadId: "t", runId: "r") { id } }');
    expect(typo.errors?.[0]?.message).not.toMatch(/Did you mean/);
    const devTypo = await dev.gql('{ rn(threadId: "t", runId: "r") { id } }');
    expect(devTypo.errors?.[0]?.message).toMatch(/Did you mean/);
  });
});

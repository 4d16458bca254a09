/**
 * A gateway whose database cannot be reached (it reaches PostgreSQL through a proxy that
 * refuses it for a while): every transport answers SERVICE_UNAVAILABLE with when to
 * retry (HTTP: 503 and Retry-After; REST in OpenAI's error shape), never a masked internal error; /ready says not
 * ready, quickly, even while the pool waits on a connection; and all is well again soon
 * after the database is back. (PGlite cannot be cut off: PostgreSQL only.)
 */
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { buildApp, unixNow, type App } from '../../src/app.js';
import { createApiKey } from '../../src/auth/api-keys.js';
import { openDatabase } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import { createLogger } from '../../src/log.js';
import { DEFAULTS } from '../../src/config.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';
import { expectMatches } from '../support/openapi.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const UNAVAILABLE = { code: 'SERVICE_UNAVAILABLE', retryAfterSeconds: 2 };

describe('a gateway whose database cannot be reached', () => {
  let db: ScratchDatabase;
  let proxy: TcpProxy;
  let app: App;
  let url: string;
  let key: string;
  let threadId: string;
  let runId: string;
  let ws: Client;

  beforeAll(async () => {
    db = await createScratchDatabase();
    const target = new URL(db.url!);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    // A key in the database: every request needs one, looked up there.
    const direct = await openDatabase({ url: db.url });
    await migrate(direct);
    key = (await createApiKey(direct.db, 'outage', unixNow())).key;
    await direct.close();
    app = await buildApp(
      { databaseUrl: proxy.url(db.url!), pgliteDir: 'memory://', databasePoolSize: 4, runExpiresAfterSeconds: 600, production: false },
      // A key once found stays trusted for a minute: requests with it need no lookup.
      { logger: createLogger({ level: 'fatal' }), worker: false, authCacheMs: 60_000 },
    );
    const port = await app.server.start(0, '127.0.0.1');
    url = `http://127.0.0.1:${port}/graphql`;
    const assistant = await gql(`mutation { createAssistant(input: { model: "scripted" }) { id } }`);
    threadId = (await gql(`mutation { createThread { id } }`)).body.data.createThread.id;
    runId = (
      await gql(`mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }`, {
        t: threadId,
        a: assistant.body.data.createAssistant.id,
      })
    ).body.data.createRun.id;
    ws = createClient({
      url: url.replace('http', 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      lazy: false,
      connectionParams: { authorization: `Bearer ${key}` },
    });
    await wsResult(`{ thread(id: "${threadId}") { id } }`); // connected, with its key known
  });
  afterAll(async () => {
    await ws?.dispose();
    await app?.stop();
    await proxy?.close();
    await db?.drop();
  });

  async function gql(query: string, variables: Record<string, unknown> = {}, authorization = `Bearer ${key}`) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization },
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as any };
  }

  /** An operation over the websocket: its result, or the errors it ended with. */
  function wsResult(query: string): Promise<any> {
    return new Promise((resolve) => {
      let result: unknown;
      ws.subscribe(
        { query },
        { next: (value) => (result = value), error: (errors) => resolve({ errors }), complete: () => resolve(result) },
      );
    });
  }

  /** A REST request: its status, Retry-After and body. */
  async function rest(method: string, path: string, authorization = `Bearer ${key}`) {
    const res = await fetch(url.replace('/graphql', `/v1${path}`), {
      method,
      headers: { authorization, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      body: method === 'POST' ? '{}' : undefined,
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as any };
  }

  async function ready(): Promise<{ status: number; ms: number }> {
    const started = Date.now();
    const res = await fetch(url.replace('/graphql', '/ready'));
    return { status: res.status, ms: Date.now() - started };
  }

  /** Runs `during` while the proxy refuses the database (`how`), then waits until /ready says ready again. */
  async function outage<T>(how: 'reset' | 'close', during: () => Promise<T>): Promise<{ result: T; readyAgainMs: number }> {
    const over = proxy.interrupt(60_000, how);
    void over;
    const result = await during();
    // Back: the proxy lets connections through again.
    await proxy.interrupt(0);
    const back = Date.now();
    while ((await ready()).status !== 200) await new Promise((r) => setTimeout(r, 50));
    return { result, readyAgainMs: Date.now() - back };
  }

  it('answers SERVICE_UNAVAILABLE on every transport, /ready 503, and serves again once the database is back', async () => {
    const { result, readyAgainMs } = await outage('reset', async () => ({
      // A JSON POST: the fast path.
      read: await gql(`query($t: ID!) { thread(id: $t) { id } }`, { t: threadId }),
      write: await gql(`mutation { createThread { id } }`),
      // A GET: yoga's own path.
      get: await fetch(`${url}?query=${encodeURIComponent(`{ thread(id: "${threadId}") { id } }`)}`, {
        headers: { accept: 'application/json', authorization: `Bearer ${key}`, 'x-graphql-yoga-csrf': '1' },
      }).then(async (res) => ({ status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as any })),
      // A key the gateway has not seen yet: its lookup needs the database.
      unknownKey: await gql(`{ thread(id: "${threadId}") { id } }`, {}, 'Bearer rw_not-seen-before'),
      restRead: await rest('GET', `/threads/${threadId}/runs/${runId}`),
      restWrite: await rest('POST', '/threads'),
      restUnknownKey: await rest('GET', `/threads/${threadId}`, 'Bearer rw_not-seen-before-either'),
      wsQuery: await wsResult(`{ thread(id: "${threadId}") { id } }`),
      wsSubscription: await wsResult(`subscription { runStatusChanged(runId: "${runId}") { status } }`),
      wsNewSocket: await new Promise<number>((resolve) => {
        const socket = new WebSocket(url.replace('http', 'ws'), 'graphql-transport-ws');
        socket.on('open', () =>
          socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer rw_another-new-one' } })),
        );
        socket.on('close', (code) => resolve(code));
      }),
      ready: await ready(),
    }));

    for (const http of [result.read, result.write, result.get, result.unknownKey]) {
      expect({ status: http.status, retryAfter: http.retryAfter }).toEqual({ status: 503, retryAfter: '2' });
      expect(http.body.errors).toHaveLength(1);
      // What yoga keeps for itself (extensions.http) is not shown.
      expect(http.body.errors[0].extensions).toEqual(UNAVAILABLE);
      expect(http.body.errors[0].message).toMatch(/retry in 2 s/);
    }
    for (const http of [result.restRead, result.restWrite, result.restUnknownKey]) {
      expect({ status: http.status, retryAfter: http.retryAfter }).toEqual({ status: 503, retryAfter: '2' });
      expectMatches('ErrorResponse', http.body);
      expect(http.body.error).toMatchObject({
        type: 'server_error',
        code: 'SERVICE_UNAVAILABLE',
        message: expect.stringMatching(/retry in 2 s/),
      });
    }
    for (const op of [result.wsQuery, result.wsSubscription]) {
      expect(op.errors.map((e: any) => e.extensions)).toEqual([UNAVAILABLE]);
    }
    // 1013, try again later: a stock client reconnects.
    expect(result.wsNewSocket).toBe(1013);
    expect(result.ready.status).toBe(503);

    // Reconnecting takes at most ~2 s between attempts, not postgres.js's default of up to 20 s.
    expect(readyAgainMs).toBeLessThan(5000);
    expect((await gql(`query($t: ID!) { thread(id: $t) { id } }`, { t: threadId })).body).toEqual({ data: { thread: { id: threadId } } });
    expect(await wsResult(`{ thread(id: "${threadId}") { id } }`)).toEqual({ data: { thread: { id: threadId } } });
  });

  it('answers /ready with 503 in time while the pool waits for a connection that never opens', async () => {
    // Connections accepted and closed at once: postgres.js keeps trying, and a query waits.
    const { result } = await outage('close', async () => {
      await new Promise((r) => setTimeout(r, 200)); // the pool has seen its connections close
      return [await ready(), await ready()];
    });
    for (const answer of result) {
      expect(answer.status).toBe(503);
      expect(answer.ms).toBeLessThan(DEFAULTS.readyTimeoutMs + 1000);
    }
  });
});

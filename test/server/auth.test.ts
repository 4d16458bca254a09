/** API keys on HTTP and websockets, and open local mode without them. */
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { eq } from 'drizzle-orm';
import { createApiKey, hashApiKey } from '../../src/auth/api-keys.js';
import { createAuthenticator } from '../../src/auth/authenticator.js';
import { listenHost, loadConfig } from '../../src/config.js';
import { apiKeys } from '../../src/db/schema.js';
import { eventually, startTestApp, type TestApp } from '../support/test-app.js';

const KEY_A = 'key-of-project-a-0123456789';
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ apiKeys: loadConfig({ API_KEYS: `${KEY_A}:projectA,key-of-project-b-0123456789:projectB` }).apiKeys });
});
afterAll(async () => {
  await t?.close();
});

const post = (headers: Record<string, string>) =>
  fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query: '{ __typename }' }),
  });

describe('HTTP', () => {
  it('answers 401 UNAUTHENTICATED without a key or with an unknown one', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer not-a-key-of-anyone-at-all' }, { authorization: 'Basic xyz' }];
    for (const headers of attempts) {
      const res = await post(headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(((await res.json()) as any).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    }
  });

  it('serves a request with a valid key', async () => {
    const res = await post({ authorization: `Bearer ${KEY_A}` });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it('leaves /health, /ready and the GraphiQL page open', async () => {
    const base = t.url.replace('/graphql', '');
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await fetch(`${base}/ready`)).status).toBe(200);
    const page = await fetch(t.url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>Runway</title>');
  });
});

describe('websockets', () => {
  const connect = (connectionParams: Record<string, unknown>) =>
    new Promise<{ closed?: number; data?: unknown }>((resolve) => {
      const client = createClient({
        url: t.wsUrl,
        webSocketImpl: WebSocket,
        retryAttempts: 0,
        connectionParams,
        on: { closed: (e: any) => resolve({ closed: e.code }) },
      });
      client.subscribe(
        { query: '{ __typename }' },
        { next: (v) => resolve({ data: v.data }), error: () => {}, complete: () => void client.dispose() },
      );
    });

  it('closes with 4401 at connection_init without a valid key', async () => {
    expect(await connect({})).toEqual({ closed: 4401 });
    expect(await connect({ authorization: 'Bearer wrong-key-wrong-key-wrong' })).toEqual({ closed: 4401 });
  });

  it('serves a socket whose connectionParams carry a valid key', async () => {
    expect(await connect({ authorization: `Bearer ${KEY_A}` })).toEqual({ data: { __typename: 'Query' } });
  });
});

describe('keys in the database (npm run key:create)', () => {
  it('lets a stored key in, as its project, and refuses it once revoked', async () => {
    const { id, key } = await createApiKey(t.app.database.db, 'projectC', 0);
    expect(key).toMatch(/^rw_[\w-]{43}$/);
    const stored = await t.app.database.db.select().from(apiKeys).where(eq(apiKeys.id, id));
    expect(stored[0]!.keyHash).not.toContain(key); // only the hash is kept
    expect((await post({ authorization: `Bearer ${key}` })).status).toBe(200);

    // A fresh app (no cache) sees the revoke at once; this one within its cache time.
    await t.app.database.db.update(apiKeys).set({ revokedAt: 1 }).where(eq(apiKeys.id, id));
    const fresh = await createAuthenticator({ envKeys: new Map(), db: t.app.database.db });
    expect(await fresh.authenticate(`Bearer ${key}`)).toBeUndefined();
    fresh.close();
  });

  it('answers at once, without a promise, when no lookup is needed: a key of API_KEYS, a stored key once looked up, open mode', async () => {
    const { key } = await createApiKey(t.app.database.db, 'projectE', 0);
    const auth = await createAuthenticator({ envKeys: new Map([[KEY_A, 'projectA']]), db: t.app.database.db });
    try {
      expect(auth.authenticate(`Bearer ${KEY_A}`)).toEqual({ projectId: 'projectA', keyId: `env:${hashApiKey(KEY_A).slice(0, 12)}` });
      const first = auth.authenticate(`Bearer ${key}`);
      expect(first).toBeInstanceOf(Promise); // a database lookup
      const caller = await first;
      expect(caller).toMatchObject({ projectId: 'projectE' });
      expect(auth.authenticate(`Bearer ${key}`)).toEqual(caller); // cached
      expect(auth.authenticate('Bearer not-a-key-of-anyone-at-all')).toBeInstanceOf(Promise);
    } finally {
      auth.close();
    }
    const open = await createAuthenticator({ envKeys: new Map() });
    expect(open.authenticate(undefined)).toEqual({ projectId: 'default', keyId: 'local' });
    open.close();
  });

  it('requires keys as soon as one is stored, even when started in open local mode', async () => {
    const open = await startTestApp();
    try {
      expect(open.app.authenticator.required).toBe(false);
      expect((await open.gql('{ __typename }')).data).toEqual({ __typename: 'Query' });
      const fast = await createAuthenticator({ envKeys: new Map(), db: open.app.database.db, keyPollMs: 20 });
      expect(fast.required).toBe(false);
      await createApiKey(open.app.database.db, 'projectD', 0);
      await eventually(() => fast.required);
      expect(await fast.authenticate(undefined)).toBeUndefined();
      fast.close();
    } finally {
      await open.close();
    }
  });
});

describe('configuration', () => {
  it('listens on 127.0.0.1 without keys (open local mode) unless HOST is set', () => {
    expect(listenHost(loadConfig({}), false)).toBe('127.0.0.1');
    expect(listenHost(loadConfig({ HOST: '0.0.0.0' }), false)).toBe('0.0.0.0');
    expect(listenHost(loadConfig({ API_KEYS: `${KEY_A}:p` }), true)).toBe('0.0.0.0');
    expect(listenHost(loadConfig({ HOST: '10.0.0.1' }), true)).toBe('10.0.0.1');
    expect(() => loadConfig({ API_KEYS: 'short:p' })).toThrow(/API_KEYS/);
  });
});

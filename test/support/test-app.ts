/**
 * A real Runway on a real port, on this file's own database, with helpers to talk to it
 * over HTTP and graphql-ws the way a client does.
 */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { buildApp, unixNow, type App } from '../../src/app.js';
import type { DatabaseTimeouts } from '../../src/db/timeouts.js';
import type { ModelRoute } from '../../src/engine/providers/routes.js';
import { createLogger, type Logger } from '../../src/log.js';
import type { QueryLimits, WebsocketLimits } from '../../src/config.js';
import { createScratchDatabase, drivers } from './database.js';

export interface GraphQLResponse<T = any> {
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, any> }[];
}

/** How a client talks to the app: over HTTP and graphql-ws, with one API key (or none). */
export interface TestClient {
  gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<T>>;
  /** Like gql, but fails the test on any error and returns data. */
  ok<T = any>(query: string, variables?: Record<string, unknown>): Promise<T>;
  wsClient(): Client;
}

export interface TestApp extends TestClient {
  app: App;
  url: string;
  wsUrl: string;
  /** The REST API's base URL (`http://127.0.0.1:<port>/v1`), for the official client's `baseURL`. */
  restUrl: string;
  /** A client that sends this API key (the app's own methods send `options.apiKey`). */
  withKey(key: string | undefined): TestClient;
  close(): Promise<void>;
}

export interface TestAppOptions {
  clock?: () => number;
  runExpiresAfterSeconds?: number;
  /** Run the engine's worker (off by default: lifecycle tests move runs by hand). */
  worker?: boolean;
  workerConcurrency?: number;
  /** How often the worker looks for queued runs it was not woken for. @default 200 ms */
  workerPollMs?: number;
  leaseSeconds?: number;
  openai?: { baseURL: string; apiKey: string; maxRetries: number };
  /** Model routes (MODEL_ROUTES, parsed), tried before `openai`. */
  modelRoutes?: ModelRoute[];
  subscriptionBuffer?: number;
  /** RUN_EVENTS_RETENTION_DAYS of the worker's housekeeping (default 30). */
  runEventsRetentionDays?: number;
  websocket?: Partial<WebsocketLimits>;
  production?: boolean;
  apiKeys?: ReadonlyMap<string, string>;
  /** The key `gql`, `ok` and `wsClient` send. @default none */
  apiKey?: string;
  /** @default unlimited (the suites that are not about rate limits make many calls) */
  rateLimits?: { mutationsPerMinute: number; subscriptionsPerMinute: number };
  /** How long a database API key lookup is cached. */
  authCacheMs?: number;
  /** Sees every SQL statement the app sends. */
  onQuery?: (sql: string) => void;
  /** Where the app logs. @default warnings and errors to stdout */
  logger?: Logger;
  queryLimits?: Partial<QueryLimits>;
  maxBodyBytes?: number;
  maxResponseBytes?: number;
  /** The gateway's connections. @default 20 */
  databasePoolSize?: number;
  /** The worker's connections (PostgreSQL). */
  databaseEnginePoolSize?: number;
  databaseTimeouts?: Partial<DatabaseTimeouts>;
  /** METRICS_TOKEN. */
  metricsToken?: string;
  /** A persisted documents manifest's path (PERSISTED_DOCUMENTS). */
  persistedDocuments?: string;
  allowArbitraryOperations?: boolean;
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const scratch = await createScratchDatabase();
  const app = await buildApp(
    {
      databaseUrl: scratch.url,
      pgliteDir: 'memory://',
      databasePoolSize: options.databasePoolSize ?? 20,
      databaseEnginePoolSize: options.databaseEnginePoolSize,
      databaseTimeouts: options.databaseTimeouts,
      runExpiresAfterSeconds: options.runExpiresAfterSeconds ?? 600,
      production: options.production ?? false,
      apiKeys: options.apiKeys,
      queryLimits: options.queryLimits,
      maxBodyBytes: options.maxBodyBytes,
      maxResponseBytes: options.maxResponseBytes,
      openai: options.openai,
      modelRoutes: options.modelRoutes,
      subscriptionBuffer: options.subscriptionBuffer,
      runEventsRetentionDays: options.runEventsRetentionDays,
      // In the postgres+redis project: event fan-out and rate-limit counters through Redis.
      redisUrl: drivers.redisUrl,
      websocket: options.websocket,
      rateLimits: options.rateLimits ?? { mutationsPerMinute: 0, subscriptionsPerMinute: 0 },
      metricsToken: options.metricsToken,
      persistedDocuments: options.persistedDocuments,
      allowArbitraryOperations: options.allowArbitraryOperations,
    },
    {
      logger: options.logger ?? createLogger({ level: process.env.LOG_LEVEL ?? 'warn' }),
      clock: options.clock ?? unixNow,
      ...(options.authCacheMs === undefined ? {} : { authCacheMs: options.authCacheMs }),
      ...(options.onQuery ? { onQuery: options.onQuery } : {}),
      worker: options.worker
        ? { pollMs: options.workerPollMs ?? 200, concurrency: options.workerConcurrency ?? 8, leaseSeconds: options.leaseSeconds ?? 30 }
        : false,
    },
  );
  const port = await app.server.start(0, '127.0.0.1');
  const url = `http://127.0.0.1:${port}/graphql`;
  const wsUrl = `ws://127.0.0.1:${port}/graphql`;
  const restUrl = `http://127.0.0.1:${port}/v1`;
  const clients: Client[] = [];

  function withKey(key: string | undefined): TestClient {
    const authorization: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
    async function gql<T>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<T>> {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...authorization },
        body: JSON.stringify({ query, variables }),
      });
      return (await res.json()) as GraphQLResponse<T>;
    }
    return {
      gql,
      async ok<T>(query: string, variables?: Record<string, unknown>) {
        const res = await gql<T>(query, variables);
        if (res.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(res.errors)}`);
        return res.data as T;
      },
      wsClient() {
        const client = createClient({
          url: wsUrl,
          webSocketImpl: WebSocket,
          retryAttempts: 0,
          lazy: true,
          connectionParams: authorization,
        });
        clients.push(client);
        return client;
      },
    };
  }

  return {
    app,
    url,
    wsUrl,
    restUrl,
    ...withKey(options.apiKey),
    withKey,
    async close() {
      await Promise.all(clients.map((c) => c.dispose()));
      await app.stop();
      await scratch.drop();
    },
  };
}

/** Subscribes and collects every payload until the subscription completes or errors. */
export function collect<T = any>(
  client: Client,
  query: string,
  variables: Record<string, unknown>,
): { events: GraphQLResponse<T>[]; done: Promise<void>; stop(): void } {
  const events: GraphQLResponse<T>[] = [];
  let stop = () => {};
  const done = new Promise<void>((resolve, reject) => {
    stop = client.subscribe<T>(
      { query, variables },
      {
        next: (value) => void events.push(value as GraphQLResponse<T>),
        error: (error) => reject(error),
        complete: () => resolve(),
      },
    );
  });
  return { events, done, stop: () => stop() };
}

/** Polls until `predicate` holds, failing after `timeoutMs`. */
export async function eventually(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Polls the async `check` until it answers something (not undefined), failing after `timeoutMs`. */
export async function until<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Every setting and its default, in one place. Only the entry point (`main.ts`) reads
 * `process.env`; everything else receives a {@link Config} (tests build one without
 * touching globals), and a module that needs a value a caller left out takes it from
 * {@link DEFAULTS}, never from a default of its own.
 *
 * Each variable's schema carries its default and, as its description, what it means:
 * docs/operations.md#configuration is written from {@link SETTINGS} by `npm run
 * docs:config` (CI fails when it is stale).
 */
import { z } from 'zod';
import type { DatabaseTimeouts } from './db/timeouts.js';
import { parseModelRoutes, type ModelRoute } from './engine/providers/routes.js';

declare module 'zod' {
  interface GlobalMeta {
    /** The default as the configuration table shows it, when it is not one value. */
    shownDefault?: string;
  }
}

const int = (fallback: number, min: number) => z.coerce.number().int().min(min).default(fallback);

/** The environment variables, in the order the configuration table lists them. */
export const SETTINGS = z.object({
  PORT: int(4000, 0).describe('HTTP and websocket port.'),
  // Open local mode (no key) listens on this machine only: nothing else may reach it.
  HOST: z
    .string()
    .min(1)
    .optional()
    .describe('Interface to listen on.')
    .meta({ shownDefault: '`127.0.0.1` without API keys, `0.0.0.0` with' }),
  API_KEYS: z
    .string()
    .regex(/^[^:,\s]{16,}:[\w.-]{1,64}(,[^:,\s]{16,}:[\w.-]{1,64})*$/, 'expected "key:project,..." with keys of 16+ characters')
    .optional()
    .describe(
      '`key1:projectA,key2:projectB` (keys of 16+ characters); more keys can be stored with `npm run key:create`. No key anywhere: open local mode (see [projects and API keys](api.md#projects-and-api-keys)).',
    ),
  RATE_LIMIT_MUTATIONS_PER_MINUTE: int(600, 0).describe('Mutation root fields per API key per minute; 0: unlimited.'),
  RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: int(120, 0).describe('New subscriptions per API key per minute; 0: unlimited.'),
  DATABASE_URL: z.string().min(1).optional().describe('PostgreSQL URL (postgres.js). Unset: embedded PGlite.'),
  PGLITE_DIR: z.string().min(1).default('./.data/pglite').describe('PGlite data directory; `memory://` keeps nothing.'),
  DATABASE_POOL_SIZE: int(10, 1).describe("The gateway's postgres.js connections (GraphQL requests)."),
  DATABASE_ENGINE_POOL_SIZE: int(5, 1).describe("The worker's connections, a pool apart from the gateway's (`ROLE=worker` and `all`)."),
  // The database timeouts' reasons are with them, in db/timeouts.ts.
  DATABASE_STATEMENT_TIMEOUT_MS: int(10_000, 0).describe(
    "`statement_timeout` of every connection but the migrations' (0: the server's setting). See [Timeouts](#timeouts).",
  ),
  DATABASE_LOCK_TIMEOUT_MS: int(1_000, 0).describe(
    "`lock_timeout` of every connection but the migrations': a request for a row held longer gets `RESOURCE_BUSY` (0: the server's setting).",
  ),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: int(10_000, 0).describe(
    "`idle_in_transaction_session_timeout`: the server ends the transaction of a process stopped inside one (0: the server's setting).",
  ),
  RUN_EXPIRES_AFTER_SECONDS: int(600, 1).describe("An active run's `expiresAt` is `createdAt` + this."),
  ROLE: z
    .enum(['gateway', 'worker', 'all'])
    .default('all')
    .describe('`gateway` (GraphQL only), `worker` (executes runs, no HTTP) or `all`. Run any number of each against one PostgreSQL.'),
  WORKER_CONCURRENCY: int(8, 1).describe('Runs one worker process executes at once.'),
  LEASE_SECONDS: int(30, 1).describe(
    "How long a worker's claim on a run holds without renewal (renewed every third of it); a crashed worker's runs are taken over after this.",
  ),
  SHUTDOWN_GRACE_SECONDS: int(10, 0).describe(
    'On SIGTERM, how long in-flight runs may take to finish before their claims are released to other workers.',
  ),
  // At least a day: clients retry a failed write with its key for as long as that.
  IDEMPOTENCY_KEY_HOURS: int(24, 24).describe('How long an `idempotencyKey` is kept (at least 24).'),
  RUN_EVENTS_RETENTION_DAYS: int(30, 0).describe(
    'How long the event history of a finished run is kept after it ended (resumable from a cursor); worker processes prune older history every minute. 0 keeps it forever.',
  ),
  SHUTDOWN_DRAIN_SECONDS: int(5, 0).describe(
    'On SIGTERM, how long `/ready` answers 503 while requests are still served (a load balancer moves traffic away) before the port stops accepting. SIGINT skips it.',
  ),
  OPENAI_BASE_URL: z
    .string()
    .url()
    .optional()
    .describe(
      'An OpenAI-compatible Chat Completions endpoint, e.g. `http://127.0.0.1:11434/v1`. With it (or a key) set, every model not named `scripted`/`scripted-*` goes there.',
    ),
  OPENAI_API_KEY: z.string().min(1).optional().describe("The endpoint's key (sent as `Authorization: Bearer`)."),
  OPENAI_MAX_RETRIES: int(2, 0).describe("Retries of 429, 5xx and network errors, with the client's backoff, before the run fails."),
  MODEL_ROUTES: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Which OpenAI-compatible endpoint serves which models: a JSON array of routes, or the path of a JSON file holding one (see [model routes](#model-routes)). Tried in order before the OPENAI_BASE_URL catch-all.',
    ),
  REDIS_URL: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Fan events out between processes through Redis pub/sub instead of PostgreSQL NOTIFY (see [live events](architecture.md#live-events)).',
    ),
  SUBSCRIPTION_BUFFER: int(1000, 1).describe(
    'Events buffered per subscription; a reader that falls further behind gets `SUBSCRIPTION_LAGGED`.',
  ),
  WS_MAX_SUBSCRIPTIONS: int(100, 1).describe('Subscriptions one websocket may hold (`TOO_MANY_SUBSCRIPTIONS` beyond).'),
  WS_MAX_MESSAGE_BYTES: int(262_144, 1024).describe('Largest websocket message accepted; a larger one closes the socket with 1009.'),
  WS_INIT_TIMEOUT_SECONDS: int(3, 1).describe('A socket that sends no `connection_init` in time is closed with 4408.'),
  WS_KEEPALIVE_SECONDS: int(12, 1).describe('Ping interval; a socket that does not answer in time is closed.'),
  // The deepest legitimate query, thread -> runs -> steps -> tool calls, is 10.
  GRAPHQL_MAX_DEPTH: int(12, 1).describe('Deepest selection accepted (graphql-armor).'),
  GRAPHQL_MAX_COST: int(5000, 1).describe(
    "graphql-armor's cost estimate, counted with the variables' page sizes (`BAD_USER_INPUT` beyond).",
  ),
  GRAPHQL_MAX_ALIASES: int(15, 0).describe('Aliases per operation.'),
  GRAPHQL_MAX_TOKENS: int(2000, 10).describe("Lexer tokens per document (GraphiQL's introspection query needs ~1,300)."),
  GRAPHQL_MAX_DIRECTIVES: int(50, 0).describe('Directives per operation.'),
  MAX_BODY_BYTES: int(1_048_576, 1024).describe('Largest HTTP body (413 beyond; a POST without Content-Length gets 411).'),
  MAX_RESPONSE_BYTES: int(16 * 1024 * 1024, 1024).describe(
    'Largest answer to one operation (or subscription event): its text and JSON fields are counted as they resolve; beyond, `RESPONSE_TOO_LARGE` alone.',
  ),
  METRICS_TOKEN: z
    .string()
    .min(16, 'at least 16 characters')
    .optional()
    .describe('Bearer token that opens `/metrics` (see [metrics](#metrics)). Unset, with API keys: `/metrics` only on `METRICS_PORT`.'),
  METRICS_PORT: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .describe(
      'A port of its own for `/metrics` (and `/health`), on `HOST`; open there unless `METRICS_TOKEN` is set. The only way to scrape `ROLE=worker`.',
    ),
  OTEL_TRACES_EXPORTER: z
    .enum(['otlp', 'console', 'none'])
    .optional()
    .describe(
      'Traces: `otlp` (OTLP over HTTP), `console` or `none`. Unset: `otlp` when an OTLP endpoint is set, else off (see [traces](#traces)).',
    ),
  OTEL_EXPORTER_OTLP_ENDPOINT: z
    .string()
    .url()
    .optional()
    .describe(
      'OTLP/HTTP collector, e.g. `http://127.0.0.1:4318` (traces go to `/v1/traces`); the other standard `OTEL_EXPORTER_OTLP_*` variables apply too.',
    ),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z
    .string()
    .url()
    .optional()
    .describe('The full traces URL, when not `<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces`.'),
  OTEL_SERVICE_NAME: z.string().min(1).default('runway').describe("Traces' `service.name`."),
  PERSISTED_DOCUMENTS: z
    .string()
    .min(1)
    .optional()
    .describe(
      "A manifest of persisted (trusted) documents: a JSON file of id -> document, as GraphQL Codegen's client-preset writes it. Clients then send `documentId` instead of `query` ([persisted documents](api.md#persisted-documents)).",
    ),
  ALLOW_ARBITRARY_OPERATIONS: z
    .stringbool()
    .default(true)
    .describe("With `PERSISTED_DOCUMENTS`: `false` runs only the manifest's documents (a `query` is `PERSISTED_DOCUMENT_REQUIRED`)."),
  LOG_LEVEL: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .default('info')
    .describe('pino level (`trace` ... `fatal`, `silent`).'),
  LOG_FORMAT: z
    .enum(['auto', 'pretty', 'json'])
    .default('auto')
    .describe('`auto`: readable lines (pino-pretty) on a terminal outside production, JSON lines otherwise.'),
  NODE_ENV: z
    .string()
    .default('development')
    .describe('`production` turns GraphiQL, introspection (on HTTP and websockets) and field suggestions off.'),
});

/**
 * Settings no variable changes: the same in every deployment, kept here so that every
 * default is in one place.
 */
const FIXED = {
  /** Operations in one batched HTTP request (a JSON array); more are refused, and none runs. */
  maxBatch: 10,
  /**
   * How long /ready waits for the database's answer: a load balancer probing a process
   * whose database is gone must hear "not ready" in time, not wait for the pool to give up.
   */
  readyTimeoutMs: 2000,
  /**
   * What the REST API tells the official clients' poll helpers (`createAndPoll`...) to wait
   * before they read a run not yet settled again (`openai-poll-after-ms`; 5 s without it).
   * A read is cheap, and a scripted run or a tool call's turn takes milliseconds.
   */
  restPollAfterMs: 250,
} as const;

export type QueryLimits = { maxDepth: number; maxCost: number; maxAliases: number; maxTokens: number; maxDirectives: number };
export type RateLimits = { mutationsPerMinute: number; subscriptionsPerMinute: number };
export type WebsocketLimits = { maxSubscriptions: number; maxMessageBytes: number; initTimeoutMs: number; keepAliveMs: number };

export type Config = Readonly<{
  port: number;
  /** HOST, when set; see {@link listenHost}. */
  host: string | undefined;
  /** Key -> project. Empty: open local mode. */
  apiKeys: ReadonlyMap<string, string>;
  databaseUrl: string | undefined;
  pgliteDir: string;
  databasePoolSize: number;
  databaseEnginePoolSize: number;
  databaseTimeouts: DatabaseTimeouts;
  runExpiresAfterSeconds: number;
  role: 'gateway' | 'worker' | 'all';
  workerConcurrency: number;
  leaseSeconds: number;
  shutdownGraceSeconds: number;
  /** SHUTDOWN_DRAIN_SECONDS, in milliseconds. */
  shutdownDrainMs: number;
  idempotencyKeyHours: number;
  runEventsRetentionDays: number;
  redisUrl: string | undefined;
  logLevel: string;
  logFormat: 'auto' | 'pretty' | 'json';
  queryLimits: QueryLimits;
  maxBodyBytes: number;
  maxResponseBytes: number;
  maxBatch: number;
  readyTimeoutMs: number;
  restPollAfterMs: number;
  rateLimits: RateLimits;
  subscriptionBuffer: number;
  websocket: WebsocketLimits;
  /** PERSISTED_DOCUMENTS: the manifest's path. */
  persistedDocuments: string | undefined;
  allowArbitraryOperations: boolean;
  /** Set when an OpenAI-compatible endpoint is configured. */
  openai: { baseURL: string | undefined; apiKey: string | undefined; maxRetries: number } | undefined;
  /** MODEL_ROUTES, parsed (keys resolved): tried in order, before `openai`. */
  modelRoutes: ModelRoute[];
  production: boolean;
  /** METRICS_TOKEN: opens /metrics (Bearer). */
  metricsToken: string | undefined;
  /** METRICS_PORT: /metrics on a port of its own. */
  metricsPort: number | undefined;
  /** Set when traces are exported. */
  tracing: { exporter: 'otlp' | 'console'; serviceName: string } | undefined;
}>;

/**
 * Where to listen: HOST if set; otherwise everywhere once keys are required, and only on
 * 127.0.0.1 in open local mode (no key: nothing but this machine may reach it).
 */
export function listenHost(config: Pick<Config, 'host'>, keysRequired: boolean): string {
  return config.host ?? (keysRequired ? '0.0.0.0' : '127.0.0.1');
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "unset", as in most shells' `VAR= cmd`.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
  const parsed = SETTINGS.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`Invalid environment:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  let modelRoutes: ModelRoute[] = [];
  try {
    if (e.MODEL_ROUTES) modelRoutes = parseModelRoutes(e.MODEL_ROUTES, present, { maxRetries: e.OPENAI_MAX_RETRIES });
  } catch (error) {
    throw new Error(`Invalid environment:\n  MODEL_ROUTES: ${(error as Error).message}`, { cause: error });
  }
  const apiKeys = new Map(
    (e.API_KEYS ?? '')
      .split(',')
      .filter(Boolean)
      .map((pair) => pair.split(':') as [string, string]),
  );
  return {
    port: e.PORT,
    host: e.HOST,
    apiKeys,
    databaseUrl: e.DATABASE_URL,
    pgliteDir: e.PGLITE_DIR,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    databaseEnginePoolSize: e.DATABASE_ENGINE_POOL_SIZE,
    databaseTimeouts: {
      statementMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
      lockMs: e.DATABASE_LOCK_TIMEOUT_MS,
      idleInTransactionMs: e.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    },
    runExpiresAfterSeconds: e.RUN_EXPIRES_AFTER_SECONDS,
    role: e.ROLE,
    workerConcurrency: e.WORKER_CONCURRENCY,
    leaseSeconds: e.LEASE_SECONDS,
    shutdownGraceSeconds: e.SHUTDOWN_GRACE_SECONDS,
    shutdownDrainMs: e.SHUTDOWN_DRAIN_SECONDS * 1000,
    idempotencyKeyHours: e.IDEMPOTENCY_KEY_HOURS,
    runEventsRetentionDays: e.RUN_EVENTS_RETENTION_DAYS,
    redisUrl: e.REDIS_URL,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    queryLimits: {
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxCost: e.GRAPHQL_MAX_COST,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxDirectives: e.GRAPHQL_MAX_DIRECTIVES,
    },
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxResponseBytes: e.MAX_RESPONSE_BYTES,
    ...FIXED,
    rateLimits: {
      mutationsPerMinute: e.RATE_LIMIT_MUTATIONS_PER_MINUTE,
      subscriptionsPerMinute: e.RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE,
    },
    subscriptionBuffer: e.SUBSCRIPTION_BUFFER,
    websocket: {
      maxSubscriptions: e.WS_MAX_SUBSCRIPTIONS,
      maxMessageBytes: e.WS_MAX_MESSAGE_BYTES,
      initTimeoutMs: e.WS_INIT_TIMEOUT_SECONDS * 1000,
      keepAliveMs: e.WS_KEEPALIVE_SECONDS * 1000,
    },
    openai:
      e.OPENAI_BASE_URL || e.OPENAI_API_KEY
        ? { baseURL: e.OPENAI_BASE_URL, apiKey: e.OPENAI_API_KEY, maxRetries: e.OPENAI_MAX_RETRIES }
        : undefined,
    modelRoutes,
    persistedDocuments: e.PERSISTED_DOCUMENTS,
    allowArbitraryOperations: e.ALLOW_ARBITRARY_OPERATIONS,
    production: e.NODE_ENV === 'production',
    metricsToken: e.METRICS_TOKEN,
    metricsPort: e.METRICS_PORT,
    tracing: tracingOf(
      e.OTEL_TRACES_EXPORTER,
      Boolean(e.OTEL_EXPORTER_OTLP_ENDPOINT || e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
      e.OTEL_SERVICE_NAME,
    ),
  };
}

/** Traces are exported when an exporter is named, or (the SDK's default) when an OTLP endpoint is set. */
function tracingOf(exporter: 'otlp' | 'console' | 'none' | undefined, endpoint: boolean, serviceName: string): Config['tracing'] {
  const chosen = exporter ?? (endpoint ? 'otlp' : 'none');
  return chosen === 'none' ? undefined : { exporter: chosen, serviceName };
}

/** Every setting as an empty environment leaves it: what a caller that gives no value gets. */
export const DEFAULTS: Config = loadConfig({});

/** One row of the configuration table: a variable, its default as shown, and what it means. */
export interface SettingRow {
  variable: string;
  shownDefault: string;
  meaning: string;
}

/** The configuration table, from {@link SETTINGS}: what docs/operations.md shows. */
export function settingRows(): SettingRow[] {
  return Object.entries(SETTINGS.shape).map(([variable, schema]) => {
    const value: unknown = schema.safeParse(undefined).data;
    const meta = schema.meta();
    return {
      variable,
      shownDefault: meta?.shownDefault ?? (value === undefined ? 'unset' : `\`${String(value)}\``),
      meaning: schema.description ?? '',
    };
  });
}

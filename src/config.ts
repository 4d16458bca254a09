/**
 * The environment, parsed once. Only the entry point (`main.ts`) reads `process.env`;
 * everything else receives a {@link Config}, so tests build one without touching globals.
 */
import { z } from 'zod';
import { DEFAULT_DATABASE_TIMEOUTS, type DatabaseTimeouts } from './db/timeouts.js';

const intFromEnv = (fallback: number, min: number) =>
  z.coerce.number().int().min(min).default(fallback);

const configSchema = z.object({
  /** HTTP and websocket port. @default 4000 */
  PORT: intFromEnv(4000, 0),
  /**
   * Interface to listen on. @default "0.0.0.0" with API keys (in API_KEYS or the database);
   * "127.0.0.1" without (open local mode: no key, so nothing but this machine may reach it).
   */
  HOST: z.string().min(1).optional(),
  /** API keys and their projects: "key1:projectA,key2:projectB". Keys may also live in the database (`npm run key:create`); none anywhere: open local mode. */
  API_KEYS: z
    .string()
    .regex(/^[^:,\s]{16,}:[\w.-]{1,64}(,[^:,\s]{16,}:[\w.-]{1,64})*$/, 'expected "key:project,..." with keys of 16+ characters')
    .optional(),
  /** A PostgreSQL URL. When unset, Runway runs on embedded PGlite. */
  DATABASE_URL: z.string().min(1).optional(),
  /** PGlite data directory when DATABASE_URL is unset; `memory://` keeps nothing. @default "./.data/pglite" */
  PGLITE_DIR: z.string().min(1).default('./.data/pglite'),
  /** The gateway's connections (GraphQL requests): ROLE=gateway and all. @default 10 */
  DATABASE_POOL_SIZE: intFromEnv(10, 1),
  /** The worker's connections, apart from the gateway's: ROLE=worker and all. @default 5 */
  DATABASE_ENGINE_POOL_SIZE: intFromEnv(5, 1),
  /** statement_timeout of every connection but the migrations' (ms; 0: the server's setting). @default 10000 */
  DATABASE_STATEMENT_TIMEOUT_MS: intFromEnv(DEFAULT_DATABASE_TIMEOUTS.statementMs, 0),
  /** lock_timeout of every connection but the migrations' (ms; 0: the server's setting). @default 1000 */
  DATABASE_LOCK_TIMEOUT_MS: intFromEnv(DEFAULT_DATABASE_TIMEOUTS.lockMs, 0),
  /** idle_in_transaction_session_timeout of every connection (ms; 0: the server's setting). @default 10000 */
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: intFromEnv(DEFAULT_DATABASE_TIMEOUTS.idleInTransactionMs, 0),
  /** An active run's expiresAt is createdAt + this. @default 600 */
  RUN_EXPIRES_AFTER_SECONDS: intFromEnv(600, 1),
  /** What this process runs: the GraphQL gateway, a worker, or both. @default "all" */
  ROLE: z.enum(['gateway', 'worker', 'all']).default('all'),
  /** Runs one worker process executes at once. @default 8 */
  WORKER_CONCURRENCY: intFromEnv(8, 1),
  /** How long a worker's claim on a run holds without renewal. @default 30 */
  LEASE_SECONDS: intFromEnv(30, 1),
  /** On SIGTERM, how long in-flight runs may take to finish before their claims are released. @default 10 */
  SHUTDOWN_GRACE_SECONDS: intFromEnv(10, 0),
  /**
   * On SIGTERM, how long /ready answers 503 while requests are still served (so a load
   * balancer moves traffic away) before the port stops accepting. SIGINT skips it. @default 5
   */
  SHUTDOWN_DRAIN_SECONDS: intFromEnv(5, 0),
  /** How long an idempotency key is kept (at least a day, as clients expect). @default 24 */
  IDEMPOTENCY_KEY_HOURS: intFromEnv(24, 24),
  /** An OpenAI-compatible endpoint (e.g. http://localhost:11434/v1); with it or a key set, non-scripted models go there. */
  OPENAI_BASE_URL: z.string().url().optional(),
  /** The endpoint's API key. */
  OPENAI_API_KEY: z.string().min(1).optional(),
  /** Retries of 429, 5xx and network errors, with backoff. @default 2 */
  OPENAI_MAX_RETRIES: intFromEnv(2, 0),
  /** Redis for event fan-out between processes, instead of PostgreSQL NOTIFY. */
  REDIS_URL: z.string().min(1).optional(),
  /** Events buffered per subscription before a slow reader is cut off with SUBSCRIPTION_LAGGED. @default 1000 */
  SUBSCRIPTION_BUFFER: intFromEnv(1000, 1),
  /** Subscriptions one websocket may hold at once. @default 100 */
  WS_MAX_SUBSCRIPTIONS: intFromEnv(100, 1),
  /** Largest websocket message accepted; a larger one closes the socket (1009). @default 262144 */
  WS_MAX_MESSAGE_BYTES: intFromEnv(262_144, 1024),
  /** A socket must send connection_init within this, or it is closed (4408). @default 3 */
  WS_INIT_TIMEOUT_SECONDS: intFromEnv(3, 1),
  /** Ping interval; a socket that does not pong within it is closed. @default 12 */
  WS_KEEPALIVE_SECONDS: intFromEnv(12, 1),
  /** pino level: trace, debug, info, warn, error, fatal or silent. @default "info" */
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Mutation fields per API key per minute (0: unlimited); shared across processes through REDIS_URL. @default 600 */
  RATE_LIMIT_MUTATIONS_PER_MINUTE: intFromEnv(600, 0),
  /** New subscriptions per API key per minute (0: unlimited). @default 120 */
  RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: intFromEnv(120, 0),
  /** Query limits (graphql-armor), on HTTP and websockets alike. */
  GRAPHQL_MAX_DEPTH: intFromEnv(12, 1),
  GRAPHQL_MAX_COST: intFromEnv(5000, 1),
  GRAPHQL_MAX_ALIASES: intFromEnv(15, 0),
  GRAPHQL_MAX_TOKENS: intFromEnv(2000, 10),
  GRAPHQL_MAX_DIRECTIVES: intFromEnv(50, 0),
  /** Largest HTTP request body. @default 1048576 */
  MAX_BODY_BYTES: intFromEnv(1_048_576, 1024),
  /** Largest answer to one operation (or subscription event); larger: RESPONSE_TOO_LARGE. @default 16777216 */
  MAX_RESPONSE_BYTES: intFromEnv(16 * 1024 * 1024, 1024),
  /** `production` turns off GraphiQL, introspection and field suggestions. @default "development" */
  NODE_ENV: z.string().default('development'),
});

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
  redisUrl: string | undefined;
  logLevel: string;
  queryLimits: { maxDepth: number; maxCost: number; maxAliases: number; maxTokens: number; maxDirectives: number };
  maxBodyBytes: number;
  maxResponseBytes: number;
  rateLimits: { mutationsPerMinute: number; subscriptionsPerMinute: number };
  subscriptionBuffer: number;
  websocket: { maxSubscriptions: number; maxMessageBytes: number; initTimeoutMs: number; keepAliveMs: number };
  /** Set when an OpenAI-compatible endpoint is configured. */
  openai: { baseURL: string | undefined; apiKey: string | undefined; maxRetries: number } | undefined;
  production: boolean;
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
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`Invalid environment:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
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
    redisUrl: e.REDIS_URL,
    logLevel: e.LOG_LEVEL,
    queryLimits: {
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxCost: e.GRAPHQL_MAX_COST,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxDirectives: e.GRAPHQL_MAX_DIRECTIVES,
    },
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxResponseBytes: e.MAX_RESPONSE_BYTES,
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
    production: e.NODE_ENV === 'production',
  };
}

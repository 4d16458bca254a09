/**
 * Composition root: opens and migrates the database, wires the services and the server.
 * Tests build an app the same way main.ts does, with their own config; what they leave
 * out takes its default from config.ts.
 */
import { AssistantService } from './assistants/assistant-service.js';
import { DEFAULTS, type Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { isMigrated, migrate } from './db/migrate.js';
import type { Services } from './graphql/context.js';
import { createAuthenticator, type Authenticator } from './auth/authenticator.js';
import { Redis } from 'ioredis';
import { createOpenAIProvider } from './engine/providers/openai.js';
import { createLogger, type Logger } from './log.js';
import type { ModelProvider } from './engine/providers/provider.js';
import { scriptedProvider } from './engine/providers/scripted.js';
import { allRoutes, routeFor } from './engine/providers/routes.js';
import { loadTokenCounting } from './engine/tokens.js';
import { Worker, type WorkerOptions } from './engine/worker.js';
import { createInProcessEventBus } from './realtime/event-bus.js';
import { isStatusEvent } from './domain/run-events.js';
import { postgresTransport, redisTransport } from './realtime/transport.js';
import { randomUUID } from 'node:crypto';
import { runFaces, type RunEngine } from './runs/index.js';
import { SWEEP_BATCH, sweepKeys } from './idempotency/idempotency.js';
import { pruneExpiredEvents } from './runs/retention.js';
import { buildServer, type RunwayServer } from './server/server.js';
import { addScrapeSource } from './observability/metrics.js';
import { loadPersistedDocuments } from './server/persisted-documents.js';
import { ThreadService } from './threads/thread-service.js';

export type AppConfig = Pick<Config, 'databaseUrl' | 'pgliteDir' | 'databasePoolSize' | 'runExpiresAfterSeconds' | 'production'> &
  Partial<
    Pick<
      Config,
      | 'openai'
      | 'modelRoutes'
      | 'subscriptionBuffer'
      | 'redisUrl'
      | 'maxBodyBytes'
      | 'maxResponseBytes'
      | 'maxBatch'
      | 'readyTimeoutMs'
      | 'apiKeys'
      | 'shutdownDrainMs'
      | 'idempotencyKeyHours'
      | 'runEventsRetentionDays'
      | 'databaseEnginePoolSize'
      | 'metricsToken'
      | 'persistedDocuments'
      | 'allowArbitraryOperations'
    >
  > & {
    databaseTimeouts?: Partial<Config['databaseTimeouts']> | undefined;
    queryLimits?: Partial<Config['queryLimits']> | undefined;
    rateLimits?: Partial<Config['rateLimits']> | undefined;
  } & { websocket?: Partial<Config['websocket']> | undefined };

export interface App {
  logger: Logger;
  /** The gateway's connections (and the process's own: readiness, events). */
  database: Database;
  /** The worker's connections: a pool of their own on PostgreSQL, else `database`. */
  engineDatabase: Database;
  services: Services;
  /**
   * The engine's face of the runs, on the gateway's connections: what specs use to move
   * runs by hand (the worker has its own, on its pool).
   */
  engine: RunEngine;
  authenticator: Authenticator;
  server: RunwayServer;
  worker: Worker | undefined;
  /**
   * Stops gracefully: /ready fails for `drainMs` while requests are still served, then
   * no new connection is accepted, in-flight runs get their grace period, subscribers
   * their last events, and websockets close with 1012 (service restart).
   */
  stop(options?: { drainMs?: number }): Promise<void>;
}

export interface BuildOptions {
  clock?: () => number;
  /** @default a pino logger at info level on stdout */
  logger?: Logger;
  /** Sees every SQL statement the app sends (specs count them). */
  onQuery?: (sql: string) => void;
  /** How long a database API key lookup is trusted (a revoke takes this long). @default 30000 */
  authCacheMs?: number;
  /** Run a worker in this process (false: gateway only). @default {} (on, with defaults) */
  worker?: Omit<WorkerOptions, 'runs' | 'providers'> | false;
}

export const unixNow = (): number => Math.floor(Date.now() / 1000);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function buildApp(config: AppConfig, options: BuildOptions = {}): Promise<App> {
  const clock = options.clock ?? unixNow;
  const logger = options.logger ?? createLogger();
  // Read before anything opens: a bad manifest stops the start with nothing to close.
  const persistedDocuments = config.persistedDocuments
    ? {
        documents: loadPersistedDocuments(config.persistedDocuments),
        allowArbitrary: config.allowArbitraryOperations ?? DEFAULTS.allowArbitraryOperations,
      }
    : undefined;
  const database = await openDatabase({
    url: config.databaseUrl,
    pgliteDir: config.pgliteDir,
    poolSize: config.databasePoolSize,
    timeouts: config.databaseTimeouts,
    onQuery: options.onQuery,
  });
  try {
    await migrate(database);
  } catch (error) {
    await database.close();
    throw error;
  }
  // The worker's statements and the clients' requests never wait for each other's
  // connections: a burst of requests cannot stall the engine, nor the engine the gateway.
  const engineDatabase =
    options.worker !== false && database.driver === 'postgres'
      ? await openDatabase({
          url: database.url,
          poolSize: config.databaseEnginePoolSize ?? DEFAULTS.databaseEnginePoolSize,
          timeouts: database.timeouts,
          onQuery: options.onQuery,
          pool: 'engine',
        })
      : database;
  const { db } = database;
  // The scripted model first: it claims its own model names; then the model routes in
  // order, the OPENAI_BASE_URL catch-all last. The first that handles a model serves it.
  const providers: ModelProvider[] = [scriptedProvider];
  for (const route of allRoutes(config.modelRoutes ?? [], config.openai)) {
    providers.push(
      createOpenAIProvider({
        baseURL: route.baseURL,
        apiKey: route.apiKey,
        maxRetries: route.maxRetries,
        timeoutMs: route.timeoutMs,
        contextWindow: route.contextWindow,
        handles: (model) => routeFor([route], model) !== undefined,
      }),
    );
  }
  const modelSupported = (model: string) => providers.some((p) => p.handles(model));
  const bus = createInProcessEventBus(config.subscriptionBuffer);
  const transport = config.redisUrl
    ? redisTransport(config.redisUrl, eventsChannel(database), database, logger)
    : postgresTransport(database);
  const lockWaitMs = (database.driver === 'postgres' && database.timeouts.lockMs) || 1000;
  const runsOn = (pool: Database) =>
    runFaces({
      db: pool.db,
      announcer: transport,
      clock,
      runExpiresAfterSeconds: config.runExpiresAfterSeconds,
      modelSupported,
      // Clients' writes to runs hold half the gateway's connections at most, reads always
      // have the rest; a write waits for its turn no longer than for a lock.
      runWrites: { slots: Math.max(1, Math.floor(config.databasePoolSize / 2)), slotWaitMs: lockWaitMs },
    });
  const runs = runsOn(database);
  let worker: Worker | undefined;
  if (options.worker !== false) {
    // A worker counts tokens from its first run: the tokenizer loads now (about half a
    // second), not in the middle of a run. A gateway-only process never loads it.
    await loadTokenCounting();
    const keysBefore = () => clock() - (config.idempotencyKeyHours ?? DEFAULTS.idempotencyKeyHours) * 3600;
    const engineRuns = engineDatabase === database ? runs.engine : runsOn(engineDatabase).engine;
    worker = new Worker({
      logger,
      housekeeping: async () => {
        while ((await sweepKeys(engineDatabase.db, keysBefore())) === SWEEP_BATCH);
        const retentionDays = config.runEventsRetentionDays ?? DEFAULTS.runEventsRetentionDays;
        await pruneExpiredEvents(engineDatabase.db, { retentionDays, now: clock() });
      },
      ...options.worker,
      runs: engineRuns,
      providers,
    });
    // Runs that expired while no process was up are expired before anything else.
    while ((await engineRuns.expireDue(500)) === 500);
  }
  // Every process hears every committed transition: subscribers get them through the
  // bus, the worker its wake-ups and cancels. After a reconnect both catch up.
  const unlisten = await transport.subscribe(
    (events) => {
      bus.publish(events);
      worker?.onEvents(events.filter(isStatusEvent));
    },
    () => {
      bus.resyncAll();
      worker?.wake();
    },
  );
  const services: Services = {
    bus,
    runs: runs.commands,
    history: runs.history,
    threads: new ThreadService({ db, clock }),
    assistants: new AssistantService({ db, clock, modelSupported }),
  };
  const authenticator = await createAuthenticator({
    envKeys: config.apiKeys ?? new Map(),
    db,
    logger,
    cacheMs: options.authCacheMs,
  });
  // Rate-limit counters shared by every gateway; without Redis each process counts alone.
  const limitsRedis = config.redisUrl
    ? new Redis(config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false })
    : undefined;
  limitsRedis?.on('error', (error) => logger.debug({ err: error }, 'rate-limit redis'));
  // Counting starts in Redis, not in the per-process fallback: operations counted there
  // before the connection is up would be invisible to Redis's count afterwards. A Redis
  // that does not answer in time leaves the fallback counting, with a warning.
  if (limitsRedis && limitsRedis.status !== 'ready') {
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      limitsRedis.once('ready', () => (clearTimeout(timer), resolve(true)));
    });
    if (!ready) logger.warn('Redis (rate-limit counters) not ready after 5 s: counting per process until it is');
  }
  const server = buildServer({
    services,
    authenticator,
    rateLimits: { ...DEFAULTS.rateLimits, ...config.rateLimits },
    sharedCounters: limitsRedis && { redis: limitsRedis, prefix: eventsChannel(database) },
    production: config.production,
    websocket: { ...DEFAULTS.websocket, ...config.websocket },
    queryLimits: { ...DEFAULTS.queryLimits, ...config.queryLimits },
    maxBodyBytes: config.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    maxResponseBytes: config.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
    maxBatch: config.maxBatch ?? DEFAULTS.maxBatch,
    ready: () => isMigrated(database).catch(() => false),
    readyTimeoutMs: config.readyTimeoutMs ?? DEFAULTS.readyTimeoutMs,
    persistedDocuments,
    logger,
    metricsToken: config.metricsToken,
  });
  const forgetSource = addScrapeSource({
    activeRuns: () => runs.engine.activeRunCounts(),
    queue: async () => {
      const { depth, oldest } = await runs.engine.queueStats();
      return { depth, oldestAgeSeconds: oldest === null ? 0 : Math.max(0, clock() - oldest) };
    },
    websocketsOpen: () => server.websocketsOpen(),
    subscriptionsOpen: () => bus.subscriberCount(),
  });
  worker?.start();
  return {
    logger,
    database,
    engineDatabase,
    services,
    engine: runs.engine,
    authenticator,
    server,
    worker,
    // A caller that sets no drain (a spec) does not wait; main.ts passes SHUTDOWN_DRAIN_SECONDS.
    async stop({ drainMs = config.shutdownDrainMs ?? 0 } = {}) {
      // A load balancer sees /ready fail and moves traffic away while everything is
      // still served; then no new connection is taken.
      server.drain();
      if (drainMs > 0 && server.http.listening) await sleep(drainMs);
      server.stopAccepting();
      await worker?.stop();
      // Subscribers get the last transitions (those of the runs just finished) before
      // their sockets close: wait until those events are here and every stream has
      // written what it holds. The subscriptions are not completed: their clients
      // subscribe again elsewhere, or here after a restart.
      await transport.flush();
      const deadline = Date.now() + 2000;
      while (bus.buffered() > 0 && Date.now() < deadline) await sleep(10);
      await server.stop();
      forgetSource();
      await unlisten();
      authenticator.close();
      limitsRedis?.disconnect();
      if (engineDatabase !== database) await engineDatabase.close();
      await database.close();
    },
  };
}

/**
 * The Redis channel (and key prefix) of this deployment: one per database name, so deployments (and test
 * databases) sharing a Redis do not hear each other. A PGlite database is one process's.
 */
function eventsChannel(database: Database): string {
  if (database.driver === 'postgres') return `runway:events:${new URL(database.url).pathname.slice(1)}`;
  return `runway:events:${randomUUID()}`;
}

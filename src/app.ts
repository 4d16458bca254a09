/**
 * Composition root: opens and migrates the database, wires the services and the server.
 * Tests build an app the same way main.ts does, with their own config.
 */
import { AssistantService } from './assistants/assistant-service.js';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { migrate } from './db/migrate.js';
import type { GraphQLContext } from './graphql/context.js';
import { scriptedProvider } from './engine/providers/scripted.js';
import { Worker, type WorkerOptions } from './engine/worker.js';
import { createInProcessEventBus, type RunEventBus } from './realtime/event-bus.js';
import { RunService } from './runs/run-service.js';
import { buildServer, type RunwayServer } from './server/server.js';
import { ThreadService } from './threads/thread-service.js';

export type AppConfig = Pick<
  Config,
  'databaseUrl' | 'pgliteDir' | 'databasePoolSize' | 'runExpiresAfterSeconds' | 'production'
>;

export interface App {
  database: Database;
  services: GraphQLContext;
  server: RunwayServer;
  worker: Worker | undefined;
  stop(): Promise<void>;
}

export interface BuildOptions {
  clock?: () => number;
  /** Run a worker in this process (false: gateway only). @default {} (on, with defaults) */
  worker?: Omit<WorkerOptions, 'runs' | 'bus' | 'providers'> | false;
}

export const unixNow = (): number => Math.floor(Date.now() / 1000);

export async function buildApp(config: AppConfig, options: BuildOptions = {}): Promise<App> {
  const clock = options.clock ?? unixNow;
  const database = await openDatabase({
    url: config.databaseUrl,
    pgliteDir: config.pgliteDir,
    poolSize: config.databasePoolSize,
  });
  try {
    await migrate(database);
  } catch (error) {
    await database.close();
    throw error;
  }
  const { db } = database;
  const providers = [scriptedProvider];
  const localBus = createInProcessEventBus();
  let worker: Worker | undefined;
  // A run queued in this process wakes this process's worker at once.
  const bus: RunEventBus = {
    ...localBus,
    publish(events) {
      localBus.publish(events);
      if (events.some((e) => e.event.status === 'queued')) worker?.wake();
    },
  };
  const runs = new RunService({
    db,
    bus,
    clock,
    runExpiresAfterSeconds: config.runExpiresAfterSeconds,
    modelSupported: (model) => providers.some((p) => p.handles(model)),
  });
  if (options.worker !== false) worker = new Worker({ ...options.worker, runs, bus, providers });
  const services: GraphQLContext = {
    bus,
    runs,
    threads: new ThreadService({ db, clock }),
    assistants: new AssistantService({ db, clock }),
  };
  const server = buildServer({ context: services, production: config.production });
  worker?.start();
  return {
    database,
    services,
    server,
    worker,
    async stop() {
      await worker?.stop();
      await server.stop();
      await database.close();
    },
  };
}

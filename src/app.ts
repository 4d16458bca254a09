/**
 * Composition root: opens and migrates the database, wires the services and the server.
 * Tests build an app the same way main.ts does, with their own config.
 */
import { AssistantService } from './assistants/assistant-service.js';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { migrate } from './db/migrate.js';
import type { GraphQLContext } from './graphql/context.js';
import { createInProcessEventBus } from './realtime/event-bus.js';
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
  stop(): Promise<void>;
}

export const unixNow = (): number => Math.floor(Date.now() / 1000);

export async function buildApp(config: AppConfig, clock: () => number = unixNow): Promise<App> {
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
  const bus = createInProcessEventBus();
  const services: GraphQLContext = {
    bus,
    runs: new RunService({ db, bus, clock, runExpiresAfterSeconds: config.runExpiresAfterSeconds }),
    threads: new ThreadService({ db, clock }),
    assistants: new AssistantService({ db, clock }),
  };
  const server = buildServer({ context: services, production: config.production });
  return {
    database,
    services,
    server,
    async stop() {
      await server.stop();
      await database.close();
    },
  };
}

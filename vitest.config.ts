import { existsSync, readFileSync } from 'node:fs';
import { configDefaults, defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import type { Drivers } from './test/support/database.js';

// The drivers this run can use, from the environment of `npm test`. Each driver is a
// project that gives its files their drivers (test/support/database.ts), and one vitest
// run runs them all: `pglite` always, `postgres` with DATABASE_URL (a server on which each
// file creates and drops a scratch database), `postgres+redis` with REDIS_URL too (Redis
// beside PostgreSQL, as deployments run it; REDIS_URL alone adds nothing).
const postgresUrl = process.env.DATABASE_URL || undefined;
const redisUrl = process.env.REDIS_URL || undefined;

/** Specs only PostgreSQL can run: several processes on one database, cut connections, timeouts, locks, the patched driver. */
const POSTGRES_ONLY = 'test/**/*.pg.test.ts';
/** Specs in a real browser (headless Chromium): what they check does not depend on the database, so PGlite alone runs them. */
const BROWSER = 'test/browser/**/*.test.ts';
/** Specs only Redis can run. */
const REDIS_ONLY = 'test/**/*.redis.test.ts';
/**
 * What Redis changes: how committed events reach subscribers (graphql-ws, other
 * processes) and workers (wake-ups, cancels), through the outbox every write appends to;
 * a process's last events before it exits; and where rate limits count. These files run a
 * third time, on PostgreSQL with Redis; any other file would only repeat its `postgres` run.
 */
const FAN_OUT = [
  'test/realtime/live-events.test.ts',
  'test/live/run-events.test.ts',
  'test/live/streaming-runs.test.ts',
  'test/live/cross-process.pg.test.ts',
  'test/live/direct-content.test.ts',
  'test/live/announced-ahead.pg.test.ts',
  'test/graphql/create-thread-and-run.test.ts',
  'test/realtime/multi-process.pg.test.ts',
  'test/graphql/subscriptions.test.ts',
  'test/graphql/statements.test.ts',
  'test/engine/scripted-runs.test.ts',
  'test/engine/expiry-and-cancel.test.ts',
  'test/engine/shutdown.test.ts',
  'test/engine/shutdown.pg.test.ts',
  'test/server/rate-limits.test.ts',
  REDIS_ONLY,
];
// A file renamed or gone would otherwise leave this project without a word.
for (const file of FAN_OUT)
  if (!file.includes('*') && !existsSync(new URL(file, import.meta.url))) throw new Error(`vitest.config.ts: no ${file}`);

/**
 * Specs that open no database (pure modules, docs, the tokenizer): the drivers change
 * nothing for them, so they run in the `pglite` project only. A file of this list that
 * starts to use a database is refused here, so that it gets its PostgreSQL run back.
 */
const DRIVER_FREE = [
  'test/architecture.test.ts',
  'test/docs.test.ts',
  'test/generated-docs.test.ts',
  'test/db/batches.test.ts',
  'test/domain/error-codes.test.ts',
  'test/domain/ids.test.ts',
  'test/domain/run-lifecycle.test.ts',
  'test/engine/prompt.test.ts',
  'test/engine/scripted-model.test.ts',
  'test/engine/tokens.test.ts',
  'test/graphql/event-projection.test.ts',
  'test/observability/labels.test.ts',
  'test/runs/shared-reads.test.ts',
  'test/server/direct-sink.test.ts',
];
for (const file of DRIVER_FREE) {
  const url = new URL(file, import.meta.url);
  if (!existsSync(url)) throw new Error(`vitest.config.ts: no ${file}`);
  if (/startTestApp|support\/database|openDatabase|createScratchDatabase/.test(readFileSync(url, 'utf8')))
    throw new Error(`vitest.config.ts: ${file} uses a database: take it off DRIVER_FREE`);
}

function project(name: string, drivers: Drivers, include: string[], exclude: string[] = []): TestProjectInlineConfiguration {
  return { extends: true, test: { name, include, exclude: [...configDefaults.exclude, ...exclude], provide: { drivers } } };
}

export default defineConfig({
  resolve: {
    // graphql 16 has no "exports" map: Node loads index.js for every importer, but vite
    // would give our sources index.mjs while graphql-ws and yoga get index.js, two
    // GraphQLError classes. Load it as Node does.
    alias: { graphql: 'graphql/index.js' },
  },
  test: {
    projects: [
      project('pglite', {}, ['test/**/*.test.ts'], [POSTGRES_ONLY, REDIS_ONLY]),
      ...(postgresUrl ? [project('postgres', { postgresUrl }, ['test/**/*.test.ts'], [REDIS_ONLY, BROWSER, ...DRIVER_FREE])] : []),
      ...(postgresUrl && redisUrl ? [project('postgres+redis', { postgresUrl, redisUrl }, FAN_OUT)] : []),
    ],
    setupFiles: ['test/support/driver-environment.ts'],
    // Each file starts its own servers and database. The projects share one pool of
    // processes, one file per process, as many at a time as there are cores less one
    // (vitest's default): one at a time on two cores.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});

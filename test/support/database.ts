/**
 * The drivers a test file runs on, given by its vitest project (vitest.config.ts): the
 * `pglite` project runs every file on in-memory PGlite, `postgres` on a PostgreSQL server
 * (a scratch database created for the file and dropped after it, so files never see each
 * other's rows), `postgres+redis` the same with events and rate-limit counters in Redis.
 * The same suites thus run on every driver; a file that only one can run says so in its
 * name (`*.pg.test.ts`, `*.redis.test.ts`).
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';

export interface Drivers {
  /** The PostgreSQL server whose scratch databases the files use; unset: in-memory PGlite. */
  postgresUrl?: string;
  /** Redis, for event fan-out and rate-limit counters; unset: PostgreSQL NOTIFY, counters per process. */
  redisUrl?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    drivers: Drivers;
  }
}

export const drivers: Drivers = inject('drivers');
export const usingPostgres = drivers.postgresUrl !== undefined;

export interface ScratchDatabase {
  /** undefined means PGlite. */
  url: string | undefined;
  drop(): Promise<void>;
}

export async function createScratchDatabase(): Promise<ScratchDatabase> {
  const serverUrl = drivers.postgresUrl;
  if (!serverUrl) return { url: undefined, drop: async () => {} };
  const name = `runway_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}

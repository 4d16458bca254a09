import { existsSync, readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import { postgresClient, type Database } from './client.js';
import { timeoutParameters } from './timeouts.js';

/** `drizzle/` at the project root, found from this file whether run from src/ or dist/. */
function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'drizzle');
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('drizzle/ migrations folder not found');
    dir = parent;
  }
}

// Any constant works; it only has to be the same in every Runway process.
export const MIGRATION_LOCK_KEY = 0x52756e77; // "Runw"

/**
 * Applies pending migrations. On a PostgreSQL server several processes may start at
 * once, so they take turns under an advisory lock on one dedicated connection.
 *
 * That connection has no statement or lock timeout (whatever the role's settings): a
 * migration may rewrite a large table, and a process waits for the advisory lock as long
 * as another one migrates. A DDL lock it waits for is held at most as long as the other
 * connections' timeouts allow. The idle-in-transaction timeout stays: a process stopped
 * mid-migration must not hold the lock, and every starting process, forever.
 */
export async function migrate(database: Database): Promise<void> {
  const folder = migrationsFolder();
  if (database.driver === 'pglite') {
    await migratePglite(database.db as unknown as PgliteDatabase, { migrationsFolder: folder });
    return;
  }
  const client = postgresClient(database.url, {
    max: 1,
    connection: { ...timeoutParameters(database.timeouts), statement_timeout: 0, lock_timeout: 0 },
  });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migratePostgres(drizzlePostgres(client), { migrationsFolder: folder });
  } finally {
    await client.end({ timeout: 5 });
  }
}

/**
 * Ready means: the database answers, and every migration in drizzle/ is applied (a process
 * started against a database that a newer version migrated, or a failed migration, is not).
 */
export async function isMigrated(database: Database): Promise<boolean> {
  const journal = JSON.parse(readFileSync(join(migrationsFolder(), 'meta', '_journal.json'), 'utf8')) as {
    entries: unknown[];
  };
  const result = await database.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
  const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { n: number }[];
  return rows[0]?.n === journal.entries.length;
}

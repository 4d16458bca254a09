/**
 * Opens the database: a PostgreSQL server through postgres.js when a URL is given, else
 * embedded PGlite. Both are driven through drizzle's common `PgDatabase` type, so the
 * rest of the code does not know which one it has.
 */
import { mkdir } from 'node:fs/promises';
import { PGlite, types } from '@electric-sql/pglite';
import type { SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { DEFAULTS } from '../config.js';
import { forgetPool, observePglite, observePostgres } from '../observability/database.js';
import * as schema from './schema.js';
import { databaseTimeouts, timeoutParameters, type DatabaseTimeouts } from './timeouts.js';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
/** The database or an open transaction: store functions run on either. */
export type Executor = Db | Tx;

export interface DatabaseOptions {
  /** PostgreSQL URL; when absent, PGlite in {@link pgliteDir}. */
  url?: string | undefined;
  pgliteDir?: string;
  /** @default DATABASE_POOL_SIZE's */
  poolSize?: number;
  /** PostgreSQL only (see timeouts.ts); those not given take their defaults. */
  timeouts?: Partial<DatabaseTimeouts> | undefined;
  /** Called with every statement drizzle sends (for counting them in specs and benchmarks). */
  onQuery?: ((sql: string) => void) | undefined;
  /** Its name in the metrics (runway_db_connections_busy{pool}). @default 'gateway' */
  pool?: string;
}

export type Database =
  | { driver: 'postgres'; db: Db; client: postgres.Sql; url: string; timeouts: DatabaseTimeouts; close(): Promise<void> }
  | { driver: 'pglite'; db: Db; client: PGlite; close(): Promise<void> };

/**
 * Seconds to wait after `attempts` failed attempts: 0.05 s doubled with each, at most 2 s,
 * less up to half at random (so that the connections of a pool do not all try at once).
 */
export function reconnectBackoff(attempts: number): number {
  return Math.min(0.05 * 2 ** attempts, 2) * (0.5 + Math.random() / 2);
}

export function postgresClient(url: string, options: postgres.Options<Record<string, never>> = {}): postgres.Sql {
  return postgres(url, {
    max: DEFAULTS.databasePoolSize,
    // postgres.js queues queries per connection in an array that never compacts when more
    // are in flight than there are connections (porsager/postgres#747): throughput fell
    // from ~11k to ~3.6k req/s over ten minutes on this machine kind. One query in flight
    // per connection keeps it stable.
    max_pipeline: 1,
    // Between attempts to reconnect, at most ~2 s (postgres.js waits 3^n / 100 s, up to
    // 20 s, n counting the pool's failed attempts since its last success): a process
    // would otherwise stay cut off for long after its database came back from an outage.
    backoff: reconnectBackoff,
    onnotice: () => {},
    ...options,
  } as postgres.Options<Record<string, never>>);
}

const queryLogger = ({ onQuery }: DatabaseOptions) => (onQuery ? { logQuery: (sql: string) => onQuery(sql) } : false);

/**
 * Sends a statement, prepared, and answers its rows, each an array of raw values (as
 * drizzle's decoders take them) made into what `decode` makes of it.
 */
export type ArrayRows = <R>(text: string, params: unknown[], decode: (row: unknown[]) => R) => Promise<R[]>;

const arrayRowReaders = new WeakMap<Db, ArrayRows>();

/** The array-rows reader of a database opened here (for src/db/row-reads.ts). */
export function arrayRowsOf(db: Db): ArrayRows {
  const read = arrayRowReaders.get(db);
  if (!read) throw new Error('Row reads need a database opened by openDatabase, outside any transaction.');
  return read;
}

/** What drizzle's PGlite session asks: dates and intervals as PostgreSQL writes them (its columns decode them). */
const raw = (value: string) => value;
const PGLITE_ARRAY_ROWS = {
  rowMode: 'array',
  parsers: { [types.TIMESTAMP]: raw, [types.TIMESTAMPTZ]: raw, [types.INTERVAL]: raw, [types.DATE]: raw },
} as const;

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) {
    const timeouts = databaseTimeouts(options.timeouts);
    const client = postgresClient(options.url, {
      max: options.poolSize ?? DEFAULTS.databasePoolSize,
      connection: timeoutParameters(timeouts),
    });
    const pool = options.pool ?? 'gateway';
    const size = options.poolSize ?? DEFAULTS.databasePoolSize;
    // Row reads send through the client's own unsafe() and observe themselves (see observePostgres).
    const send = client.unsafe.bind(client);
    const observe = observePostgres(client, pool, size);
    const db = drizzlePostgres(client, { schema, logger: queryLogger(options) }) as unknown as Db;
    // drizzle() set the client's parsers to leave dates to the columns' decoders: read as it does.
    // The query is awaited here, not chained with `.then()`: chained, scavenges kept about
    // 1.2 MB of query objects and rows alive each (promoted, then left to full GCs) against
    // 0.5 MB awaited, under the same load of run reads; GC pauses fell by about a third
    // (docs/performance.md, "The REST reads"). Why V8 keeps them is not established.
    arrayRowReaders.set(db, async (text, params, decode) => {
      options.onQuery?.(text);
      const end = observe(text);
      try {
        const rows = await send(text, params as postgres.ParameterOrJSON<never>[], { prepare: true }).values();
        end();
        return rows.map(decode);
      } catch (error) {
        end(error);
        throw error;
      }
    });
    const close = () => client.end({ timeout: 5 }).finally(() => forgetPool(pool, size));
    return { driver: 'postgres', db, client, url: options.url, timeouts, close };
  }
  const dir = options.pgliteDir ?? 'memory://';
  if (!dir.startsWith('memory://')) await mkdir(dir, { recursive: true });
  const client = await PGlite.create(dir);
  const pool = options.pool ?? 'gateway';
  observePglite(client, pool);
  const db = drizzlePglite(client, { schema, logger: queryLogger(options) }) as unknown as Db;
  arrayRowReaders.set(db, async (text, params, decode) => {
    options.onQuery?.(text);
    return (await client.query<unknown[]>(text, params, PGLITE_ARRAY_ROWS)).rows.map(decode);
  });
  return { driver: 'pglite', db, client, close: () => client.close().finally(() => forgetPool(pool, 1)) };
}

/** The rows of a raw statement, from either driver (postgres.js answers an array, PGlite `{ rows }`). */
export async function rowsOf<T>(ex: Executor, query: SQL): Promise<T[]> {
  const result: unknown = await ex.execute(query);
  return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as T[];
}

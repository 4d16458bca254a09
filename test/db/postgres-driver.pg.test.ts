/**
 * postgres.js 3.4.9, as Runway patches it (patches/postgres+3.4.9.patch):
 *
 * - It can send a transaction's BEGIN on a connection without reserving it when the
 *   BEGIN is pipelined behind a prepared statement (porsager/postgres#1189): the
 *   transaction then fails with UNSAFE_TRANSACTION, or worse, other queries run inside it.
 * - A connection cut mid-transaction (porsager/postgres#1154, #1208) crashed the process
 *   with a TypeError from a write to the vanished socket, and lost the connection from
 *   the pool for good; a cut while a new connection fetched its types was an unhandled
 *   rejection, which ends a Node process; a query sent on a connection between its
 *   socket's reset and its close waited forever.
 *
 * Each spec here fails without the patch.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { postgresClient } from '../../src/db/client.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

describe('the PostgreSQL driver (patched postgres.js)', () => {
  let db: ScratchDatabase;
  let proxy: TcpProxy;
  // Whatever escapes the driver; vitest would also fail the run on it.
  const escaped: string[] = [];
  const onEscape = (error: unknown) => void escaped.push(String(error));
  beforeAll(async () => {
    db = await createScratchDatabase();
    const target = new URL(db.url!);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
  });
  beforeEach(() => void escaped.splice(0));
  afterAll(async () => {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
    await proxy?.close();
    await db?.drop();
  });

  it('reserves the connection of every transaction, with prepared statements in flight', async () => {
    const sql = postgresClient(db.url!, { max: 3 });
    try {
      const failures: unknown[] = [];
      for (let round = 0; round < 20; round++) {
        await Promise.all([
          // Prepared statements (as Runway's hot reads are) keep the connections busy...
          ...Array.from({ length: 12 }, (_, i) => sql`select ${i}::int as n, pg_sleep(0.002)`.catch((e) => failures.push(e))),
          // ...while transactions begin: each must get a connection of its own.
          ...Array.from({ length: 6 }, () =>
            sql.begin(async (tx) => (await tx`select txid_current() as id`)[0]).catch((e) => failures.push(e)),
          ),
        ]);
      }
      expect(failures.map((e) => String(e))).toEqual([]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  /** Resolves with `value`, or with 'stuck' after `ms`. */
  const within = <T>(promise: Promise<T>, ms: number) =>
    Promise.race([promise, new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), ms).unref())]);

  /**
   * Two transactions that can only finish together (each waits for the other to have
   * started): they need both connections of a pool of two.
   */
  async function bothConnectionsWork(sql: ReturnType<typeof postgresClient>): Promise<boolean> {
    let started = 0;
    let release!: () => void;
    const bothStarted = new Promise<void>((r) => (release = r));
    const one = () =>
      sql.begin(async (tx) => {
        await tx`select 1`;
        if (++started === 2) release();
        await bothStarted;
      });
    return (await within(Promise.all([one(), one()]), 5000)) !== 'stuck';
  }

  it('settles a transaction whose connection is cut, without a crash, and keeps every connection of the pool', async () => {
    const sql = postgresClient(proxy.url(db.url!), { max: 2 });
    try {
      expect(await bothConnectionsWork(sql)).toBe(true);
      const outcomes: string[] = [];
      for (const how of ['close', 'reset', 'close', 'reset'] as const) {
        // The cut lands while the transaction waits on the server; it then sends its ROLLBACK.
        const tx = sql
          .begin(async (t) => {
            await t`select 1`;
            await t`select pg_sleep(1)`;
          })
          .then(
            () => 'committed',
            (e: { code?: string }) => e.code,
          );
        await new Promise((r) => setTimeout(r, 150));
        await proxy.interrupt(20, how);
        outcomes.push(String(await within(tx, 5000)));
      }
      // The transaction fails as its connection did (closed, or reset: either way ended).
      for (const outcome of outcomes) expect(['CONNECTION_CLOSED', 'ECONNRESET']).toContain(outcome);
      expect(await bothConnectionsWork(sql)).toBe(true);
      await new Promise((r) => setImmediate(r));
      expect(escaped).toEqual([]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('settles every query sent while the connections of the pool are being reset', async () => {
    const sql = postgresClient(proxy.url(db.url!), { max: 4 });
    try {
      await Promise.all([1, 2, 3, 4].map(() => sql`select pg_sleep(0.05)`)); // four open connections
      const down = proxy.interrupt(1000, 'reset');
      // One after another, from the moment of the cut: some land on a connection between
      // its socket's error and its close.
      const outcomes: unknown[] = [];
      for (let i = 0; i < 6; i++)
        outcomes.push(
          await within(
            sql`select 1`.then(
              () => 'answered',
              (e: { code?: string }) => e.code,
            ),
            5000,
          ),
        );
      await down;
      expect(outcomes).not.toContain('stuck');
      expect(
        await within(
          sql`select 2 as n`.then((rows) => rows[0]?.['n']),
          5000,
        ),
      ).toBe(2);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('fails the query that opened a connection cut while it fetched its types, with nothing unhandled', async () => {
    const sql = postgresClient(proxy.url(db.url!), { max: 1 });
    try {
      // postgres.js reads the array types of each new connection before its first query.
      proxy.cutWhen('pg_catalog.pg_type', { how: 'reset' });
      const first = await sql`select 1 as n`.then(
        () => 'answered',
        (e: { code?: string }) => e.code,
      );
      expect(first).toBe('ECONNRESET');
      expect(
        await within(
          sql`select 2 as n`.then((rows) => rows[0]?.['n']),
          5000,
        ),
      ).toBe(2);
      await new Promise((r) => setTimeout(r, 50));
      expect(escaped).toEqual([]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});

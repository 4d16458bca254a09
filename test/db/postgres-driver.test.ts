/**
 * postgres.js 3.4.9 can send a transaction's BEGIN on a connection without reserving it
 * when the BEGIN is pipelined behind a prepared statement (porsager/postgres#1189): the
 * transaction then fails with UNSAFE_TRANSACTION, or worse, other queries run inside it.
 * Runway patches the driver (patches/postgres+3.4.9.patch); this spec fails without it.
 */
import { describe, expect, it } from 'vitest';
import { postgresClient } from '../../src/db/client.js';
import { createScratchDatabase, usingPostgres } from '../support/database.js';

describe.skipIf(!usingPostgres)('the PostgreSQL driver (patched postgres.js)', () => {
  it('reserves the connection of every transaction, with prepared statements in flight', async () => {
    const db = await createScratchDatabase();
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
      await db.drop();
    }
  });
});

/**
 * A Runway process stopped inside a transaction, as a frozen worker would be: it opens
 * the database as Runway does (the environment read by loadConfig), locks a run's row,
 * prints `locked <backend pid>` and waits there; the test then stops it (SIGSTOP).
 *
 *   DATABASE_URL=... RUN_ID=run_... node --import tsx test/support/hold-run-lock.ts
 */
import { sql } from 'drizzle-orm';
import { openDatabase } from '../../src/db/client.js';
import { loadConfig } from '../../src/config.js';

const config = loadConfig();
const database = await openDatabase({ url: config.databaseUrl, poolSize: 1, timeouts: config.databaseTimeouts });
await database.db.transaction(async (tx) => {
  // postgres.js answers rows as an array.
  const [row] = (await tx.execute(
    sql`select pg_backend_pid() as pid from runs where id = ${process.env.RUN_ID} for update`,
  )) as unknown as { pid: number }[];
  process.stdout.write(`locked ${row!.pid}\n`);
  await new Promise(() => {});
});

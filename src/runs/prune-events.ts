/**
 * `npm run retention:prune`: deletes the event history of runs that ended longer ago than
 * RUN_EVENTS_RETENTION_DAYS, now, and prints how many runs' history went. Worker processes
 * do the same once a minute; this is for a database no worker runs on, or a cron job.
 *
 * On PGlite, stop the server first: an embedded database has one process at a time.
 */
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/client.js';
import { migrate } from '../db/migrate.js';
import { pruneExpiredEvents } from './retention.js';

const config = loadConfig();
const database = await openDatabase({ url: config.databaseUrl, pgliteDir: config.pgliteDir, poolSize: 1 });
try {
  await migrate(database);
  const runs = await pruneExpiredEvents(database.db, {
    retentionDays: config.runEventsRetentionDays,
    now: Math.floor(Date.now() / 1000),
  });
  console.log(
    config.runEventsRetentionDays > 0
      ? `Pruned the event history of ${runs} run(s) that ended more than ${config.runEventsRetentionDays} day(s) ago.`
      : 'RUN_EVENTS_RETENTION_DAYS is 0: event history is kept forever; nothing pruned.',
  );
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
} finally {
  await database.close();
}

/**
 * `npm run key:create -- --project NAME`: stores a new API key for the project in the
 * database Runway uses (DATABASE_URL, or PGlite at PGLITE_DIR) and prints it once; only
 * its hash is kept. A running server notices the first key within seconds and from then
 * on requires one (it keeps listening where it started: set HOST to open it up).
 *
 * On PGlite, stop the server first: an embedded database has one process at a time.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/client.js';
import { migrate } from '../db/migrate.js';
import { createApiKey } from './api-keys.js';

const { values } = parseArgs({ options: { project: { type: 'string' } } });
if (!values.project) {
  console.error('usage: npm run key:create -- --project NAME');
  process.exit(2);
}
const config = loadConfig();
const database = await openDatabase({ url: config.databaseUrl, pgliteDir: config.pgliteDir, poolSize: 1 });
try {
  await migrate(database);
  const { id, key } = await createApiKey(database.db, values.project, Math.floor(Date.now() / 1000));
  console.error(`Created API key ${id} for project '${values.project}'. It is shown this once; store it now:`);
  console.log(key);
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
} finally {
  await database.close();
}

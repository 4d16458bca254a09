/**
 * `npm run key:revoke -- --id KEY_ID`: revokes a stored API key (its id as key:create and
 * key:list print it). Every running Runway process refuses it within a second, and closes
 * the websockets it authenticated with code 4401. Revoking is final; the row stays, so
 * key:list still shows when the key was made and revoked.
 *
 * On PGlite, stop the server first: an embedded database has one process at a time.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/client.js';
import { migrate } from '../db/migrate.js';
import { revokeApiKey } from './api-keys.js';

const { values } = parseArgs({ options: { id: { type: 'string' } } });
if (!values.id) {
  console.error('usage: npm run key:revoke -- --id KEY_ID (npm run key:list shows the ids)');
  process.exit(2);
}
const config = loadConfig();
const database = await openDatabase({ url: config.databaseUrl, pgliteDir: config.pgliteDir, poolSize: 1 });
try {
  await migrate(database);
  const key = await revokeApiKey(database.db, values.id);
  if (!key) {
    console.error(`No API key ${values.id}.`);
    process.exitCode = 1;
  } else {
    console.error(
      `API key ${key.id} of project '${key.projectId}' is revoked (since ${new Date((key.revokedAt ?? 0) * 1000).toISOString()}).`,
    );
  }
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
} finally {
  await database.close();
}

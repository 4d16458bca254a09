/**
 * `npm run key:list [-- --project NAME]`: the API keys stored in the database Runway uses,
 * one a line: id, project, created and revoked (ISO times; `-` while live). Never the key:
 * only its hash is stored.
 *
 * On PGlite, stop the server first: an embedded database has one process at a time.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/client.js';
import { migrate } from '../db/migrate.js';
import { listApiKeys, type ApiKeyListing } from './api-keys.js';

const { values } = parseArgs({ options: { project: { type: 'string' } } });
const config = loadConfig();
const database = await openDatabase({ url: config.databaseUrl, pgliteDir: config.pgliteDir, poolSize: 1 });
try {
  await migrate(database);
  const keys = await listApiKeys(database.db, values.project);
  console.log(['id', 'project', 'created', 'revoked'].join('\t'));
  for (const key of keys) console.log(listingLine(key));
  if (keys.length === 0) console.error('No API keys stored (npm run key:create -- --project NAME makes one).');
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
} finally {
  await database.close();
}

function listingLine(key: ApiKeyListing): string {
  const time = (seconds: number | null) => (seconds === null ? '-' : new Date(seconds * 1000).toISOString());
  return [key.id, key.projectId, time(key.createdAt), time(key.revokedAt)].join('\t');
}

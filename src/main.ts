/** Entry point: the only module that reads the environment, listens, and exits. */
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { GRAPHQL_PATH } from './server/server.js';

const config = loadConfig();
const app = await buildApp(config);
const port = await app.server.start(config.port, config.host);
const where = config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `PGlite at ${config.pgliteDir}`;
const shownHost = config.host === '0.0.0.0' ? 'localhost' : config.host;
console.log(`Runway on http://${shownHost}:${port}${GRAPHQL_PATH} (${where})`);

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: shutting down`);
  try {
    await app.stop();
    process.exit(0);
  } catch (error) {
    console.error('shutdown failed', error);
    process.exit(1);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

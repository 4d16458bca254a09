/** Entry point: the only module that reads the environment, listens, and exits. */
import { buildApp } from './app.js';
import { listenHost, loadConfig } from './config.js';
import { createLogger, logFormat, stdoutFor } from './log.js';
import { GRAPHQL_PATH } from './server/server.js';
import { adminServer } from './server/metrics-http.js';
import { startTracing } from './observability/tracing.js';

const config = loadConfig();
const format = logFormat({ isTTY: process.stdout.isTTY === true, production: config.production, setting: config.logFormat });
const logger = createLogger({ level: config.logLevel, destination: stdoutFor(format) });
// A rejection nobody handled, or an exception nothing caught, leaves the process in a
// state nobody planned for: log it and exit non-zero (the supervisor restarts the
// process; another worker takes its runs over) rather than limp on.
for (const event of ['unhandledRejection', 'uncaughtException'] as const) {
  process.on(event, (error: unknown) => {
    logger.fatal({ err: error, event }, 'unexpected failure: exiting');
    process.exit(1);
  });
}
// Before the app: the SDK must be the tracer provider when the first span is made.
const stopTracing = config.tracing ? await startTracing(config.tracing) : undefined;
const app = await buildApp(config, {
  logger,
  worker:
    config.role === 'gateway'
      ? false
      : {
          concurrency: config.workerConcurrency,
          leaseSeconds: config.leaseSeconds,
          shutdownGraceMs: config.shutdownGraceSeconds * 1000,
        },
});
const host = listenHost(config, app.authenticator.required);
if (!app.authenticator.required) {
  logger.warn(
    { host },
    'No API keys configured (API_KEYS or npm run key:create): open local mode, every request is let in, as project "default". Listening on 127.0.0.1 unless HOST is set.',
  );
}
const where = config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `PGlite at ${config.pgliteDir}`;
if (config.role === 'worker') {
  logger.info({ role: config.role }, `Runway worker ${app.worker?.id} on ${where}`);
} else {
  const port = await app.server.start(config.port, host);
  const shownHost = host === '0.0.0.0' ? 'localhost' : host;
  const url = `http://${shownHost}:${port}${GRAPHQL_PATH}`;
  logger.info({ role: config.role, port, url }, `Runway ${config.role} on ${url} (${where})`);
  // A person at a terminal gets the address on a line of its own, to click or copy.
  if (format === 'pretty') process.stdout.write(`\nRunway is ready: ${url}${config.production ? '' : ' (GraphiQL in a browser)'}\n\n`);
}

// The metrics on a port of their own: the only way to scrape a worker (no API port).
const admin =
  config.metricsPort === undefined
    ? undefined
    : adminServer({ keysRequired: () => app.authenticator.required, token: config.metricsToken }, logger);
if (admin && config.metricsPort !== undefined) {
  const port = await admin.start(config.metricsPort, host);
  logger.info({ port }, `Metrics on http://${host === '0.0.0.0' ? 'localhost' : host}:${port}/metrics`);
}

let stopping = false;
/**
 * SIGTERM (what orchestrators send) drains first: /ready fails for SHUTDOWN_DRAIN_SECONDS
 * while requests are still served. SIGINT (Ctrl-C at a terminal) stops without the drain.
 */
async function shutdown(signal: 'SIGTERM' | 'SIGINT') {
  if (stopping) return;
  stopping = true;
  const drainMs = signal === 'SIGTERM' && config.role !== 'worker' ? config.shutdownDrainMs : 0;
  logger.info({ signal, drainSeconds: drainMs / 1000, graceSeconds: config.shutdownGraceSeconds }, 'stopping');
  try {
    await app.stop({ drainMs });
    await admin?.stop();
    await stopTracing?.();
    process.exit(0);
  } catch (error) {
    logger.error({ err: error }, 'shutdown failed');
    process.exit(1);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

/**
 * `GET /metrics`, in Prometheus's text format, on the API port and, with METRICS_PORT, on
 * an admin port of its own (the only way to scrape a `ROLE=worker` process, which has no
 * API port).
 *
 * Who may read it: anyone in open local mode (no API key anywhere: the API is open too).
 * Otherwise a scraper with METRICS_TOKEN as its Bearer token; and, on the admin port
 * only, anyone when no METRICS_TOKEN is set (that port is meant to be reachable by the
 * scraper alone). API keys never open it: they are tenants', the metrics are the operator's.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import { sendError } from './http-answers.js';
import { listen } from './listen.js';
import { registry } from '../observability/metrics.js';

export const METRICS_PATH = '/metrics';

export interface MetricsAccess {
  /** API keys are required (not open local mode). */
  keysRequired: () => boolean;
  /** METRICS_TOKEN. */
  token: string | undefined;
}

/**
 * Answers `/metrics` (and returns true) or returns false for any other path.
 * @param adminPort this is the METRICS_PORT server, not the API's.
 */
export function metricsEndpoint(access: MetricsAccess, adminPort: boolean, log: Logger) {
  const expected = access.token === undefined ? undefined : Buffer.from(`Bearer ${access.token}`);
  return function answer(req: IncomingMessage, res: ServerResponse, path: string | undefined): boolean {
    if (path !== METRICS_PATH) return false;
    if (access.keysRequired() || expected) {
      const given = req.headers.authorization;
      if (expected) {
        if (!given) {
          sendError(res, 'UNAUTHENTICATED', 'Metrics need METRICS_TOKEN: Authorization: Bearer <token>.');
          return true;
        }
        const sent = Buffer.from(given);
        if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
          sendError(res, 'FORBIDDEN', 'That token does not open the metrics (METRICS_TOKEN).');
          return true;
        }
      } else if (!adminPort) {
        sendError(
          res,
          'FORBIDDEN',
          'Metrics are not served on the API port of a deployment with API keys: set METRICS_TOKEN, or scrape METRICS_PORT.',
        );
        return true;
      }
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return true;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (error: unknown) => {
        log.error({ err: error }, 'collecting metrics failed');
        sendError(res, 'SERVICE_UNAVAILABLE', 'The metrics could not be collected; try again.');
      },
    );
    return true;
  };
}

export interface AdminServer {
  /** Listens; resolves with the bound port. */
  start(port: number, host: string): Promise<number>;
  stop(): Promise<void>;
}

/** The METRICS_PORT server: `/metrics`, `/health`, nothing else. */
export function adminServer(access: MetricsAccess, log: Logger): AdminServer {
  const metrics = metricsEndpoint(access, true, log);
  const http: Server = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (metrics(req, res, path)) return;
    if (path === '/health') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    sendError(res, 'NOT_FOUND', `Only ${METRICS_PATH} and /health are served on the metrics port.`);
  });
  return {
    start: (port, host) => listen(http, port, host),
    stop() {
      if (!http.listening) return Promise.resolve();
      return new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}

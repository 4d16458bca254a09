/**
 * Every response carries a request id (the caller's, if it sent a sane one), and every
 * request leaves one access line with it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { accessLogger, type Logger } from '../log.js';

/**
 * Stamps the request (and its response) with its id, and logs the access line when the
 * response is finished. Later steps read the id from `req.headers['x-request-id']`.
 */
export function requestLog(log: Logger) {
  const access = accessLogger(log);
  return function stamp(req: IncomingMessage, res: ServerResponse, path: string | undefined): void {
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    req.headers['x-request-id'] = requestId;
    res.setHeader('x-request-id', requestId);
    const started = performance.now();
    res.once('finish', () =>
      access.info(
        { requestId, method: req.method, path, status: res.statusCode, ms: Math.round((performance.now() - started) * 10) / 10 },
        'request',
      ),
    );
  };
}

/**
 * The REST API (`/v1`, src/rest/) over HTTP, once the request passed the body limits: the
 * caller is authenticated as for GraphQL (the same authenticator: any key, or none, in
 * open local mode; a valid key once keys exist), the body of a POST is read, and the
 * request is served by the REST face. Its answers, refusals included, are OpenAI's.
 *
 * A GET whose key needs no lookup reaches the API in the turn it arrived in: no promise
 * stands between the request and its read (six fewer promises on the way to a run's one
 * read raised its throughput by 9%, docs/performance.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Authenticator } from '../auth/authenticator.js';
import type { Caller } from '../domain/caller.js';
import { ServiceUnavailableError } from '../domain/errors.js';
import type { Logger } from '../log.js';
import type { RestApi } from '../rest/api.js';
import { RestError, sendRestError } from '../rest/errors.js';
import { ClientGoneError, readBody } from './yoga-bridge.js';

export interface RestHttpOptions {
  api: RestApi;
  authenticator: Authenticator;
  log: Logger;
}

export function serveRestHttp({ api, authenticator: auth, log }: RestHttpOptions) {
  /** Serves an authenticated caller's request; `api.serve` never rejects. */
  function proceed(req: IncomingMessage, res: ServerResponse, path: string, caller: Caller | undefined, body: Promise<string> | undefined) {
    if (!caller)
      return void sendRestError(res, new RestError('UNAUTHENTICATED', 'A valid API key is required: Authorization: Bearer <key>.'));
    if (!body) return void api.serve(req, res, caller, path, undefined);
    body.then(
      (text) => api.serve(req, res, caller, path, text),
      (error: unknown) => failed(req, res, error),
    );
  }

  function failed(req: IncomingMessage, res: ServerResponse, error: unknown) {
    const requestId = req.headers['x-request-id'];
    if (error instanceof ClientGoneError) return void log.debug({ requestId }, 'client hung up mid-body');
    log.error({ err: error, requestId }, 'request failed');
    if (!res.headersSent) sendRestError(res, error);
    else res.destroy();
  }

  return function serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    const body = req.method === 'POST' ? readBody(req) : undefined;
    // A client may hang up mid-body while the key is being checked (or after a 401, when
    // nobody reads the body): that rejection must not go unhandled and end the process.
    body?.catch(() => undefined);
    try {
      const caller = auth.authenticate(req.headers.authorization);
      if (!(caller instanceof Promise)) return proceed(req, res, path, caller, body);
      caller
        .then(
          (known) => proceed(req, res, path, known, body),
          (error: unknown) => {
            // Only a database lookup of the key can fail here.
            log.error({ err: error, requestId: req.headers['x-request-id'] }, 'authentication failed');
            sendRestError(res, new ServiceUnavailableError());
          },
        )
        .catch((error: unknown) => failed(req, res, error));
    } catch (error) {
      failed(req, res, error);
    }
  };
}

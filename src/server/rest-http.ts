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
import { serveAuthenticated, type FailureAnswers } from './http-auth.js';
import { readBody } from './yoga-bridge.js';

export interface RestHttpOptions {
  api: RestApi;
  authenticator: Authenticator;
  log: Logger;
}

const REST_FAILURES: FailureAnswers = {
  unavailable: (res) => sendRestError(res, new ServiceUnavailableError()),
  internal: sendRestError,
};

export function serveRestHttp({ api, authenticator: auth, log }: RestHttpOptions) {
  /** Serves an authenticated caller's request; `api.serve` never rejects. */
  function proceed(req: IncomingMessage, res: ServerResponse, path: string, caller: Caller | undefined, body: Promise<string> | undefined) {
    if (!caller)
      return void sendRestError(res, new RestError('UNAUTHENTICATED', 'A valid API key is required: Authorization: Bearer <key>.'));
    if (!body) return void api.serve(req, res, caller, path, undefined);
    return body.then((text) => api.serve(req, res, caller, path, text));
  }

  return function serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    const body = req.method === 'POST' ? readBody(req) : undefined;
    // A client may hang up mid-body while the key is being checked (or after a 401, when
    // nobody reads the body): that rejection must not go unhandled and end the process.
    body?.catch(() => undefined);
    serveAuthenticated(auth, log, req, res, REST_FAILURES, (caller) => proceed(req, res, path, caller, body));
  };
}

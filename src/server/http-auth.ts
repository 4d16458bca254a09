/**
 * Who an HTTP request is from: its `Authorization: Bearer <key>`, checked by the
 * authenticator before the request reaches GraphQL. GraphiQL's page is public (its
 * requests carry the key the user sets in Headers); every GraphQL request needs a valid
 * key once keys are configured.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Authenticator } from '../auth/authenticator.js';
import type { Caller } from '../domain/caller.js';
import { ServiceUnavailableError } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { sendError } from './http-answers.js';
import { ClientGoneError } from './yoga-bridge.js';

/** A GET for an HTML page: GraphiQL, served without a key. */
export function wantsPage(req: IncomingMessage): boolean {
  return req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
}

/** The answer to a request without a valid key: 401, and how to authenticate. */
export function sendUnauthenticated(res: ServerResponse): void {
  res.setHeader('www-authenticate', 'Bearer');
  sendError(res, 'UNAUTHENTICATED', 'A valid API key is required: Authorization: Bearer <key>.');
}

/**
 * The answer when the key could not be looked up (only a database lookup can fail): a
 * refusal for want of the database, as the GraphQL answers say it: 503, Retry-After.
 */
export function sendUnavailable(res: ServerResponse): void {
  const error = new ServiceUnavailableError();
  const retryAfterSeconds = error.details['retryAfterSeconds'] as number;
  res.setHeader('retry-after', String(retryAfterSeconds));
  sendError(res, error.code, error.message, { retryAfterSeconds });
}

/** How a face (GraphQL, REST) says what went wrong, each in its own wire format. */
export interface FailureAnswers {
  /** The key's database lookup failed: 503. */
  unavailable(res: ServerResponse): void;
  /** A bug in the serving itself: 500. */
  internal(res: ServerResponse, error: unknown): void;
}

/**
 * Authenticates a request and hands its caller (none: no valid key) to `serve`: in the turn
 * the request arrived in when the key needs no lookup, so no promise stands before the
 * answer's own (see Authenticator), else once the key's lookup answers. Whatever `serve`
 * throws or rejects with is logged and answered, never left unhandled: a client that hung
 * up mid-body only noted, an answer already begun cut off.
 */
export function serveAuthenticated(
  auth: Authenticator,
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  answers: FailureAnswers,
  serve: (caller: Caller | undefined) => void | Promise<void>,
): void {
  const failed = (error: unknown) => {
    const requestId = req.headers['x-request-id'];
    if (error instanceof ClientGoneError) return void log.debug({ requestId }, 'client hung up mid-body');
    log.error({ err: error, requestId }, 'request failed');
    if (!res.headersSent) answers.internal(res, error);
    else res.destroy();
  };
  try {
    const caller = auth.authenticate(req.headers.authorization);
    if (!(caller instanceof Promise)) return void serve(caller)?.catch(failed);
    caller
      .then(serve, (error: unknown) => {
        // Only a database lookup of the key can fail here.
        log.error({ err: error, requestId: req.headers['x-request-id'] }, 'authentication failed');
        answers.unavailable(res);
      })
      .catch(failed);
  } catch (error) {
    failed(error);
  }
}

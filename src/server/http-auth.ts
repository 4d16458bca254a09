/**
 * Who an HTTP request is from: its `Authorization: Bearer <key>`, checked by the
 * authenticator before the request reaches GraphQL. GraphiQL's page is public (its
 * requests carry the key the user sets in Headers); every GraphQL request needs a valid
 * key once keys are configured.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ServiceUnavailableError } from '../domain/errors.js';
import { sendError } from './http-answers.js';

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

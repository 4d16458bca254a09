/**
 * The REST face of the API: OpenAI's Assistants API v2 under `/v1`, over the same use
 * cases as GraphQL. Given a request whose caller the server has authenticated and whose
 * body it has read (within the body limits), it routes it, checks what it carries, counts
 * a write against the caller's rate limit, runs the endpoint and answers its object as
 * JSON, or the error as the API answers it (errors.ts).
 *
 * No CSRF header is asked for, unlike GraphQL's: a browser cannot send another site's
 * request with an `Authorization` header, nor with a JSON body, without a CORS preflight,
 * which Runway never grants (it answers no `OPTIONS` and sends no `Access-Control-*`
 * header). With API keys, a forged request has no key: 401. In open local mode (no key
 * at all) a POST body must still be JSON (`Content-Type: application/json`, else 415), so
 * no cross-site form or script can send one; what is left is a body-less POST (cancel a
 * run whose ids the page would have to know, create an empty thread).
 */
import { noteRoute } from '../observability/requests.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller } from '../domain/caller.js';
import { ResponseTooLargeError } from '../domain/errors.js';
import { nulInJson } from '../domain/text.js';
import type { Logger } from '../log.js';
import { idempotencyKeyHeader } from './bodies.js';
import { fieldName, invalidUrl, RestError, sendRestError } from './errors.js';
import { Router } from './router.js';
import { RunEventStream } from './run-events-sse.js';
import { routes, type RestRequest, type RestServices } from './routes.js';

export const REST_PREFIX = '/v1/';

export interface RestApiOptions {
  services: RestServices;
  /**
   * Counts one write (a POST) of the key against its rate limit: why it is refused, or
   * undefined to go on. Absent: writes are not limited.
   */
  limitWrites?: ((keyId: string) => Promise<{ message: string; retryAfterSeconds: number } | undefined>) | undefined;
  /** Largest answer (RESPONSE_TOO_LARGE beyond). */
  maxResponseBytes: number;
  /** `openai-poll-after-ms` on a run not yet settled: how long the official clients' poll helpers wait before reading it again. */
  pollAfterMs: number;
  log: Logger;
}

export interface RestApi {
  /** Answers the request (never rejects): `body` is the POST body read, undefined for other methods. */
  serve(req: IncomingMessage, res: ServerResponse, caller: Caller, path: string, body: string | undefined): Promise<void>;
}

/** Statuses of a run the poll helpers wait on (they return on any other). */
const POLLED = new Set(['queued', 'in_progress', 'cancelling']);
const NO_QUERY = new URLSearchParams();

export function createRestApi(options: RestApiOptions): RestApi {
  const { services, limitWrites, maxResponseBytes, log } = options;
  const router = new Router(routes);
  const pollAfter = String(options.pollAfterMs);

  /**
   * The endpoint's answer (an object, or its promise). Not an async function: a GET goes
   * from the router to its handler without a promise of its own.
   */
  function answer(req: IncomingMessage, caller: Caller, path: string, text: string | undefined): unknown {
    const match = router.match(req.method, path);
    if (!match) throw invalidUrl(req.method, path);
    noteRoute(req, match.route.pattern);
    const beta = req.headers['openai-beta'];
    if (typeof beta === 'string' && /assistants=/.test(beta) && !/assistants=v2\b/.test(beta)) {
      throw new RestError('BAD_USER_INPUT', 'Runway serves the Assistants API v2: send OpenAI-Beta: assistants=v2.', 'OpenAI-Beta');
    }
    const url = req.url ?? path;
    const q = url.indexOf('?');
    const query = q < 0 ? NO_QUERY : new URLSearchParams(url.slice(q + 1));
    const request: RestRequest = { caller, params: match.params, query, body: {}, idempotencyKey: undefined, services };
    if (req.method === 'GET') return match.route.handler(request);
    return write(req, request, text).then(match.route.handler);
  }

  /** A write's request: counted against the key's rate limit, its body and Idempotency-Key checked. */
  async function write(req: IncomingMessage, request: RestRequest, text: string | undefined): Promise<RestRequest> {
    if (limitWrites) {
      const refused = await limitWrites(request.caller.keyId);
      if (refused) throw new RestError('RATE_LIMITED', refused.message, null, refused.retryAfterSeconds);
    }
    const body = text ? jsonBody(req.headers['content-type'], text) : {};
    const key = idempotencyKeyHeader.safeParse(req.headers['idempotency-key']);
    if (!key.success) throw new RestError('BAD_USER_INPUT', `Invalid Idempotency-Key: ${key.error.issues[0]?.message}`, 'Idempotency-Key');
    return { ...request, body, idempotencyKey: key.data };
  }

  return {
    async serve(req, res, caller, path, text) {
      try {
        const object = await answer(req, caller, path, text);
        if (object instanceof RunEventStream) return await object.send(res, log);
        const json = JSON.stringify(object);
        // Three bytes per UTF-16 code unit at most: most answers need no counting.
        if (json.length * 3 > maxResponseBytes && Buffer.byteLength(json) > maxResponseBytes)
          throw new ResponseTooLargeError(maxResponseBytes);
        const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) };
        const run = object as { object?: unknown; status?: unknown };
        if (run.object === 'thread.run' && POLLED.has(run.status as string)) headers['openai-poll-after-ms'] = pollAfter;
        res.writeHead(200, headers).end(json);
      } catch (error) {
        if (res.headersSent) return void res.destroy();
        if (sendRestError(res, error).bug) log.error({ err: error, requestId: req.headers['x-request-id'] }, 'REST request failed');
      }
    },
  };
}

/**
 * A POST's body: a JSON object, sent as JSON (see the CSRF note above), whose strings
 * PostgreSQL can keep (a NUL is refused; a lone surrogate becomes U+FFFD, domain/text.ts).
 */
function jsonBody(contentType: string | undefined, text: string): unknown {
  if (!/^application\/json\b/i.test(contentType ?? '')) {
    throw new RestError('UNSUPPORTED_MEDIA_TYPE', 'Request bodies must be JSON, sent with Content-Type: application/json.');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new RestError('BAD_USER_INPUT', 'The body is not valid JSON.');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new RestError('BAD_USER_INPUT', 'The body must be a JSON object.');
  const nul = nulInJson(body, true);
  if (nul)
    throw new RestError('BAD_USER_INPUT', `Invalid input: ${fieldName(nul)}: must not contain NUL (U+0000) characters.`, fieldName(nul));
  return body;
}

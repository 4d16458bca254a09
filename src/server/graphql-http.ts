/**
 * GraphQL over HTTP, once the request passed the body limits: the caller is
 * authenticated, then a JSON POST (nearly every request) is read here and served by the
 * fast path, or handed to yoga with its body; anything else goes to yoga as it came.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller, Services } from '../graphql/context.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { Logger } from '../log.js';
import { createFastPath } from './fast-path.js';
import type { PersistedDocuments } from './persisted-documents.js';
import { sendError } from './http-answers.js';
import { sendUnauthenticated, sendUnavailable, serveAuthenticated, wantsPage, type FailureAnswers } from './http-auth.js';
import { readBody, sendThroughYoga } from './yoga-bridge.js';
import { NO_CALLER, type RunwayYoga } from './yoga-context.js';

export interface GraphqlHttpOptions {
  yoga: RunwayYoga;
  services: Services;
  authenticator: Authenticator;
  /** GRAPHQL_MAX_TOKENS: the fast path checks a document's syntax on the side with it. */
  maxTokens: number;
  /** Persisted documents, when configured (the fast path must apply them as yoga does). */
  persisted?: PersistedDocuments | undefined;
  log: Logger;
}

const GRAPHQL_FAILURES: FailureAnswers = {
  unavailable: sendUnavailable,
  internal: (res) => sendError(res, 'INTERNAL_SERVER_ERROR', 'Unexpected error.'),
};

export function serveGraphqlHttp({ yoga, services, authenticator: auth, maxTokens, persisted, log }: GraphqlHttpOptions) {
  const fastPath = createFastPath(yoga, services, maxTokens, persisted);
  // yoga is a proxy (a request handler with properties): read its path once.
  const endpoint = yoga.graphqlEndpoint;

  /** The request of an authenticated caller (or of GraphiQL's page, without one). */
  async function answer(req: IncomingMessage, res: ServerResponse, caller: Caller | undefined, body: Promise<string> | undefined) {
    if (!caller && !wantsPage(req)) return sendUnauthenticated(res);
    if (!body) return void yoga(req, res, { caller: caller ?? NO_CALLER });
    const text = await body;
    if (caller && (await fastPath(req, res, caller, text))) return;
    await sendThroughYoga(yoga, req, res, text, { caller: caller ?? NO_CALLER });
  }

  return function serve(req: IncomingMessage, res: ServerResponse, path: string | undefined): void {
    const json = req.method === 'POST' && path === endpoint && /^application\/json\b/i.test(req.headers['content-type'] ?? '');
    const body = json ? readBody(req) : undefined;
    // A client may hang up mid-body while the key is being checked (or after a 401, when
    // nobody reads the body): that rejection must not go unhandled and end the process.
    body?.catch(() => undefined);
    serveAuthenticated(auth, log, req, res, GRAPHQL_FAILURES, (caller) => answer(req, res, caller, body));
  };
}

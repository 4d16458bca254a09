/**
 * One node:http server for everything: GraphQL over HTTP (yoga), GraphiQL and graphql-ws
 * websockets on one path, and OpenAI's Assistants REST API under `/v1`. The websocket path
 * runs operations through `yoga.getEnveloped`, so both GraphQL transports share the same
 * schema, context, plugins and error masking; REST calls the same use cases, and counts
 * against the same rate limits. What the node handler does before an API (request ids,
 * health, body limits, authentication, the fast path) is a named step each, in its own file.
 */
import { createServer, type Server } from 'node:http';
import { createYoga, type Plugin } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { DEFAULTS, type QueryLimits, type RateLimits, type WebsocketLimits } from '../config.js';
import type { GraphQLContext, Services } from '../graphql/context.js';
import { maskError, useInputErrorCodes, useUnavailableStatus } from '../graphql/errors.js';
import { useAnswerBudget } from '../graphql/answer-budget.js';
import { useDirectSubscriptions } from '../graphql/event-projection.js';
import { schema } from '../graphql/schema.js';
import { createLogger, type Logger } from '../log.js';
import type { Authenticator } from '../auth/authenticator.js';
import { createRestApi, REST_PREFIX } from '../rest/api.js';
import { RestError, sendRestError } from '../rest/errors.js';
import { bodyLimits } from './body-limits.js';
import { useCsrfPrevention } from './csrf.js';
import { createGraphiql } from './graphiql.js';
import { GRAPHIQL_TABS } from './graphiql-tabs.js';
import { serveGraphqlHttp } from './graphql-http.js';
import { sendError } from './http-answers.js';
import { listen } from './listen.js';
import { graphqlWsHandlers } from './graphql-ws.js';
import { usePersistedDocuments, type PersistedDocuments } from './persisted-documents.js';
import { protectionPlugins } from './protection.js';
import { createRateLimiters, useRateLimits, type SharedCounters } from './rate-limits.js';
import { createReadiness } from './readiness.js';
import { requestLog } from './request-log.js';
import { serveRestHttp } from './rest-http.js';
import { serveGraphqlWs } from './websocket.js';
import { metricsEndpoint } from './metrics-http.js';
import { observeRequest, useOperationObservation } from '../observability/requests.js';
import { requestContext, type RequestContext, type Transport } from './yoga-context.js';

export const GRAPHQL_PATH = '/graphql';

/** What the server is given; every limit's default and meaning is in config.ts. */
export interface ServerOptions {
  services: Services;
  /** Who a request's key stands for; every request's context carries its caller. */
  authenticator: Authenticator;
  /** Turns GraphiQL, introspection and field suggestions off. */
  production: boolean;
  websocket: WebsocketLimits;
  queryLimits: QueryLimits;
  /** Largest HTTP request body accepted (413 beyond). */
  maxBodyBytes: number;
  /** Operations in one batched HTTP request. */
  maxBatch: number;
  /** Largest answer one operation (or subscription event) may have (RESPONSE_TOO_LARGE beyond). */
  maxResponseBytes: number;
  /** For /ready: is the database reachable and migrated? (Not ready when it takes longer than readyTimeoutMs.) @default always */
  ready?: () => Promise<boolean>;
  readyTimeoutMs: number;
  logger?: Logger;
  rateLimits: RateLimits;
  /** Shares rate-limit counters between gateway processes. */
  sharedCounters?: SharedCounters | undefined;
  /** Persisted (trusted) documents, from PERSISTED_DOCUMENTS. @default none */
  persistedDocuments?: PersistedDocuments | undefined;
  /** What the REST API tells clients polling a run to wait (`openai-poll-after-ms`). @default DEFAULTS.restPollAfterMs */
  restPollAfterMs?: number;
  /** METRICS_TOKEN: opens /metrics (see metrics-http.ts). */
  metricsToken?: string | undefined;
}

export interface RunwayServer {
  /** Listens; resolves with the bound port (useful with port 0). */
  start(port: number, host: string): Promise<number>;
  /**
   * The first step of a shutdown: /ready answers 503 from now on, so that a load
   * balancer moves traffic elsewhere, while every request is still served.
   */
  drain(): void;
  /** Accepts no new connection; requests and sockets already open go on. */
  stopAccepting(): void;
  /**
   * Closes websockets with 1012 (service restart) without completing their
   * subscriptions: a stock graphql-ws client reconnects and subscribes again by itself
   * (a completed subscription it would drop). Then the HTTP server.
   */
  stop(): Promise<void>;
  readonly http: Server;
  /** graphql-ws websockets open now (the metrics). */
  websocketsOpen(): number;
}

/** The close code that tells a websocket client to come back: "service restart" (RFC 6455 registry). */
export const SERVICE_RESTART = 1012;

export function buildServer(options: ServerOptions): RunwayServer {
  const { services, authenticator, queryLimits, websocket: limits } = options;
  const log = options.logger ?? createLogger();
  // One set of counters: GraphQL mutations and REST writes spend the same budget.
  const rateLimiters = createRateLimiters(options.rateLimits, options.sharedCounters);

  const yoga = createYoga<RequestContext, GraphQLContext & Transport>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    // The websocket path passes its own context (see graphql-ws.ts); HTTP requests carry
    // the caller the node handler authenticated.
    context: requestContext(services),
    // GraphiQL is served before yoga (graphiql.ts), in development only.
    graphiql: false,
    landingPage: false,
    // A JSON array of operations, bounded.
    batching: { limit: options.maxBatch },
    // Ours is checked first (body-limits.ts); yoga's own (25 MB by default) must never be the lower one.
    maxRequestBodySize: options.maxBodyBytes,
    plugins: [
      useDirectSubscriptions(),
      useInputErrorCodes(),
      useUnavailableStatus(),
      useRateLimits(rateLimiters) as Plugin,
      ...protectionPlugins(queryLimits, options.production),
      useAnswerBudget(options.maxResponseBytes),
      // Requests a browser could send cross-site without a preflight must carry a
      // header, unless a bearer key authenticates them (see csrf.ts).
      useCsrfPrevention(),
      useOperationObservation(),
      ...(options.persistedDocuments ? [usePersistedDocuments(options.persistedDocuments)] : []),
    ],
    // Stack traces never reach a client, in development either: maskError logs them.
    maskedErrors: { maskError, isDev: false },
    // yoga's own messages (unexpected errors among them) as structured lines.
    logging: {
      debug: (...args) => log.debug(args),
      info: (...args) => log.info(args),
      warn: (...args) => log.warn(args),
      error: (...args) => log.error({ err: args[0] }, 'graphql error'),
    },
  });

  // The node handler: each step answers the request itself (and returns) or passes it on.
  const stamp = requestLog(log);
  const readiness = createReadiness(options.ready ?? (async () => true), options.readyTimeoutMs);
  const bodyRefusal = bodyLimits(options.maxBodyBytes);
  const graphqlHttp = serveGraphqlHttp({
    yoga,
    services,
    authenticator,
    maxTokens: queryLimits.maxTokens,
    persisted: options.persistedDocuments,
    log,
  });
  const countWrite = rateLimiters.mutations;
  const restApi = createRestApi({
    services,
    limitWrites: countWrite && ((keyId) => countWrite(keyId, 1)),
    maxResponseBytes: options.maxResponseBytes,
    pollAfterMs: options.restPollAfterMs ?? DEFAULTS.restPollAfterMs,
    log,
  });
  const restHttp = serveRestHttp({ api: restApi, authenticator, log });
  const metrics = metricsEndpoint({ keysRequired: () => authenticator.required, token: options.metricsToken }, false, log);
  const graphiql = options.production
    ? undefined
    : createGraphiql(GRAPHQL_PATH, { subscriptionsProtocol: 'WS', title: 'Runway', defaultTabs: GRAPHIQL_TABS });
  const http = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    stamp(req, res, path);
    const rest = path?.startsWith(REST_PREFIX) ? path : undefined;
    observeRequest(req, res, path, rest ? 'rest' : path === GRAPHQL_PATH ? 'graphql' : 'other', () => {
      if (readiness.answer(path, res) || metrics(req, res, path)) return;
      // Each API refuses a body in its own dialect.
      const refused = bodyRefusal(req);
      if (refused && rest) return void sendRestError(res, new RestError(refused.code, refused.message));
      if (refused) return sendError(res, refused.code, refused.message);
      if (rest) return restHttp(req, res, rest);
      if (graphiql?.serve(req, res, path)) return;
      graphqlHttp(req, res, path);
    });
  });

  // ws closes a socket that sends a larger message with 1009 (message too big).
  const wss = new WebSocketServer({ server: http, path: GRAPHQL_PATH, maxPayload: limits.maxMessageBytes });
  const graphqlWs = serveGraphqlWs(
    graphqlWsHandlers({
      yoga,
      services,
      authenticator,
      maxSubscriptions: limits.maxSubscriptions,
      initTimeoutMs: limits.initTimeoutMs,
      persisted: options.persistedDocuments,
    }),
    wss,
    // Pings every keepAliveMs; a socket that does not pong in time is terminated.
    limits.keepAliveMs,
    (socket) => ({ socket }),
    log,
  );

  /** Set once the server stops accepting: resolves when its last connection closed. */
  let closed: Promise<void> | undefined;
  function stopAccepting() {
    if (!http.listening || closed) return; // a worker-only process never listened
    closed = new Promise<void>((resolve, reject) => http.close((error) => (error ? reject(error) : resolve())));
    // Idle keep-alive connections would otherwise hold the close up; busy ones finish first.
    http.closeIdleConnections();
  }

  return {
    http,
    websocketsOpen: () => wss.clients.size,
    start: (port, host) => listen(http, port, host),
    drain: readiness.drain,
    stopAccepting,
    async stop() {
      await graphqlWs.close(SERVICE_RESTART, 'Service restart');
      stopAccepting();
      const allClosed = closed;
      if (!allClosed) return; // a worker-only process never listened
      http.closeIdleConnections();
      // In-flight requests get a moment to finish; a client that keeps a response
      // half-read (or a keep-alive socket busy) does not hold the shutdown up.
      const force = setTimeout(() => http.closeAllConnections(), 2000);
      await allClosed.finally(() => clearTimeout(force));
    },
  };
}

/**
 * One node:http server for everything on one path: GraphQL over HTTP (yoga), GraphiQL,
 * and graphql-ws websockets. The websocket path runs operations through
 * `yoga.getEnveloped`, so both transports share the same schema, context, plugins and
 * error masking.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createYoga, type Plugin } from 'graphql-yoga';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Caller, GraphQLContext, Services } from '../graphql/context.js';
import { maskError, useInputErrorCodes, useUnavailableStatus } from '../graphql/errors.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import { ServiceUnavailableError } from '../domain/errors.js';
import { useAnswerBudget } from '../graphql/answer-budget.js';
import { schema } from '../graphql/schema.js';
import { accessLogger, createLogger, type Logger } from '../log.js';
import type { Authenticator } from '../auth/authenticator.js';
import { createFastPath } from './fast-path.js';
import { directSink, serveGraphqlWs } from './websocket.js';
import { eventProjection, useDirectSubscriptions } from '../graphql/event-projection.js';
import { DEFAULT_QUERY_LIMITS, protectionPlugins, type QueryLimits } from './protection.js';
import { DEFAULT_RATE_LIMITS, useRateLimits, type RateLimits, type SharedCounters } from './rate-limits.js';

export const GRAPHQL_PATH = '/graphql';

export interface WebsocketLimits {
  /** @default 100 */
  maxSubscriptions: number;
  /** @default 262144 */
  maxMessageBytes: number;
  /** @default 3000 */
  initTimeoutMs: number;
  /** @default 12000 */
  keepAliveMs: number;
}

export const DEFAULT_WEBSOCKET_LIMITS: WebsocketLimits = {
  maxSubscriptions: 100,
  maxMessageBytes: 262_144,
  initTimeoutMs: 3000,
  keepAliveMs: 12_000,
};

export interface ServerOptions {
  services: Services;
  /** Who a request's key stands for; every request's context carries its caller. */
  authenticator: Authenticator;
  /** Turns GraphiQL, introspection and field suggestions off. */
  production: boolean;
  websocket?: Partial<WebsocketLimits> | undefined;
  queryLimits?: Partial<QueryLimits> | undefined;
  /** Largest HTTP request body accepted (413 beyond). @default 1048576 */
  maxBodyBytes?: number | undefined;
  /** Operations in one batched HTTP request. @default 10 */
  maxBatch?: number | undefined;
  /** Largest answer one operation (or subscription event) may have (RESPONSE_TOO_LARGE beyond). @default 16777216 */
  maxResponseBytes?: number | undefined;
  /** For /ready: is the database reachable and migrated? (Not ready when it takes longer than READY_TIMEOUT_MS.) */
  ready?: () => Promise<boolean>;
  logger?: Logger;
  rateLimits?: Partial<RateLimits> | undefined;
  /** Shares rate-limit counters between gateway processes. */
  sharedCounters?: SharedCounters | undefined;
}

/** The context a request starts with: who it is from, and how it came. */
type RequestContext = { caller: Caller };
type Transport = { transport: 'http' | 'websocket' };
/** What a socket's graphql-ws context keeps: the socket, and who it authenticated as. */
type SocketExtra = { socket: WebSocket; caller?: Caller };

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
}

/** The close code that tells a websocket client to come back: "service restart" (RFC 6455 registry). */
export const SERVICE_RESTART = 1012;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/**
 * How long /ready waits for the database's answer: a load balancer probing a process
 * whose database is gone must hear "not ready" in time, not wait for the pool to give up.
 */
export const READY_TIMEOUT_MS = 2000;

/** A refusal for want of the database, as the GraphQL answers say it: 503, Retry-After. */
function sendUnavailable(res: ServerResponse): void {
  const error = new ServiceUnavailableError();
  const retryAfterSeconds = error.details['retryAfterSeconds'] as number;
  res.setHeader('retry-after', String(retryAfterSeconds));
  sendJson(res, 503, { errors: [{ message: error.message, extensions: { code: error.code, retryAfterSeconds } }] });
}

const STATUS_CODES: Record<number, string> = { 411: 'LENGTH_REQUIRED', 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE' };

function sendError(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { errors: [{ message, extensions: { code: STATUS_CODES[status] } }] });
}

/**
 * A body's charset, when its Content-Type names one other than UTF-8: bodies are read as
 * UTF-8 (JSON's only encoding, RFC 8259), so any other would be read wrong.
 */
export function foreignCharset(contentType: string | undefined): string | undefined {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType ?? '')?.[1];
  return charset === undefined || /^utf-?8$/i.test(charset) ? undefined : charset;
}

/** The client hung up before its body ended: nobody is left to answer. */
class ClientGoneError extends Error {
  constructor() {
    super('the client hung up before the end of the body');
  }
}

/**
 * The request body as text (its size was checked against Content-Length already).
 * Rejects when the client hangs up before the end, so no request waits forever.
 */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    // Node reports a hang-up as an 'aborted' error, then a close: either way, gone.
    req.once('error', () => reject(new ClientGoneError()));
    req.once('close', () => {
      if (!req.complete) reject(new ClientGoneError());
    });
  });
}

/** Only the GraphiQL page is served without a key; it never reaches a resolver. */
const NO_CALLER: Caller = Object.freeze({ projectId: '', keyId: 'anonymous' });

const NOTHING_TO_ADD = Object.freeze({});

interface EnvelopedRoot {
  execute(args: ExecutionArgs): unknown;
  subscribe(args: ExecutionArgs): unknown;
}

export function buildServer(options: ServerOptions): RunwayServer {
  const { services } = options;
  const queryLimits = { ...DEFAULT_QUERY_LIMITS, ...options.queryLimits };
  const yoga = createYoga<RequestContext, GraphQLContext & Transport>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    // The websocket path passes its own context (see onSubscribe); HTTP requests carry
    // the caller the node handler authenticated.
    context: (initial) => {
      // Already complete: nothing to add (returning it would copy it onto itself, key by key).
      if ('transport' in initial) return NOTHING_TO_ADD as GraphQLContext & Transport;
      // The GraphiQL page is served without a key; nothing else runs without one.
      if (!initial.caller.projectId) {
        throw new GraphQLError('A valid API key is required.', { extensions: { code: 'UNAUTHENTICATED' } });
      }
      return { ...services, ...initial.caller, transport: 'http' as const };
    },
    graphiql: options.production ? false : { subscriptionsProtocol: 'WS', title: 'Runway' },
    // GraphiQL served from this package, not a CDN: it works on a machine without internet.
    renderGraphiQL,
    landingPage: false,
    // A JSON array of operations, bounded.
    batching: { limit: options.maxBatch ?? 10 },
    plugins: [
      useDirectSubscriptions(),
      useInputErrorCodes(),
      useUnavailableStatus(),
      useRateLimits({ ...DEFAULT_RATE_LIMITS, ...options.rateLimits }, options.sharedCounters) as Plugin,
      ...protectionPlugins(queryLimits, options.production),
      useAnswerBudget(options.maxResponseBytes ?? 16 * 1024 * 1024),
      // Requests a browser could send cross-site without a preflight must carry this
      // header; JSON POSTs (what GraphQL clients send) are preflighted and pass.
      useCSRFPrevention({ requestHeaders: ['x-graphql-yoga-csrf'] }),
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

  const limits = { ...DEFAULT_WEBSOCKET_LIMITS, ...options.websocket };
  const log = options.logger ?? createLogger();
  const access = accessLogger(log);
  const auth = options.authenticator;
  const maxBodyBytes = options.maxBodyBytes ?? 1_048_576;
  const ready = options.ready ?? (async () => true);
  let draining = false;
  // One check at a time: probes that arrive while it is under way (a dead pool may hold it
  // until the database is back) share its answer, each bounded by the timeout.
  let checking: Promise<boolean> | undefined;
  function isReady(): Promise<boolean> {
    checking ??= ready()
      .catch(() => false)
      .finally(() => (checking = undefined));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS)));
    return Promise.race([checking, late]).finally(() => clearTimeout(timer));
  }
  const http = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    // Every response carries a request id (the caller's, if it sent a sane one), and
    // every request leaves one access line with it.
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
    if (path === '/health') return sendJson(res, 200, { status: 'ok' });
    if (path === '/ready') {
      if (draining) return sendJson(res, 503, { status: 'draining' });
      void isReady().then((ok) => sendJson(res, ok ? 200 : 503, { status: ok ? 'ready' : 'not ready' }));
      return;
    }
    // GraphiQL's page is public (its requests carry the key the user sets in Headers);
    // every GraphQL request needs a valid key once keys are configured.
    const wantsPage = req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
    if (req.method === 'POST') {
      const length = req.headers['content-length'];
      // A body of unknown length could be endless: GraphQL clients always send one.
      if (length === undefined) return sendError(res, 411, 'A Content-Length header is required.');
      if (Number(length) > maxBodyBytes) return sendError(res, 413, `Request bodies are limited to ${maxBodyBytes} bytes.`);
      const charset = foreignCharset(req.headers['content-type']);
      if (charset !== undefined) return sendError(res, 415, `Request bodies must be UTF-8, not '${charset.slice(0, 40)}'.`);
    }
    // A JSON POST (nearly every request) is read here and served by the fast path,
    // or handed to yoga with its body; anything else goes to yoga as it came.
    const json = req.method === 'POST' && path === GRAPHQL_PATH && /^application\/json\b/i.test(req.headers['content-type'] ?? '');
    const body = json ? readBody(req) : undefined;
    // A client may hang up mid-body while the key is being checked (or after a 401, when
    // nobody reads the body): that rejection must not go unhandled and end the process.
    body?.catch(() => undefined);
    auth.authenticate(req.headers.authorization).then(
      async (caller) => {
        if (!caller && !wantsPage) {
          res.setHeader('www-authenticate', 'Bearer');
          return sendJson(res, 401, {
            errors: [{ message: 'A valid API key is required: Authorization: Bearer <key>.', extensions: { code: 'UNAUTHENTICATED' } }],
          });
        }
        if (!body) return void yoga(req, res, { caller: caller ?? NO_CALLER });
        const text = await body;
        if (caller && (await fastPath(req, res, caller, text))) return;
        await sendThroughYoga(req, res, text, { caller: caller ?? NO_CALLER });
      },
      (error: unknown) => {
        // Only a database lookup of the key can fail here.
        log.error({ err: error, requestId }, 'authentication failed');
        sendUnavailable(res);
      },
    ).catch((error: unknown) => {
      // A bug in the serving itself (resolver errors never get here: they are results).
      if (error instanceof ClientGoneError) return void log.debug({ requestId }, 'client hung up mid-body');
      log.error({ err: error, requestId }, 'request failed');
      if (!res.headersSent) sendJson(res, 500, { errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
      else res.destroy();
    });
  });

  const fastPath = createFastPath(yoga, services, queryLimits.maxTokens);

  /** yoga's answer to a request whose body was already read, streamed (SSE included). */
  async function sendThroughYoga(req: IncomingMessage, res: ServerResponse, body: string, context: RequestContext) {
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const response = await yoga.fetch(
      `http://${req.headers.host ?? 'localhost'}${req.url ?? GRAPHQL_PATH}`,
      { method: 'POST', headers, body, signal: abort.signal },
      context,
    );
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (!response.body) return void res.end();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
      }
    } finally {
      res.end();
    }
  }
  // ws closes a socket that sends a larger message with 1009 (message too big).
  const wss = new WebSocketServer({ server: http, path: GRAPHQL_PATH, maxPayload: limits.maxMessageBytes });

  const unauthenticated = 'Unauthenticated: connectionParams.authorization needs a valid API key';
  const graphqlWs = serveGraphqlWs<SocketExtra>(
    {
      // A socket that never sends connection_init is closed with 4408.
      connectionInitWaitTimeout: limits.initTimeoutMs,
      onConnect: async (ctx) => {
        let caller: Caller | undefined;
        try {
          caller = await auth.authenticate(ctx.connectionParams?.['authorization']);
        } catch (error) {
          if (!isDatabaseUnavailable(error)) throw error;
          // 1013 (try again later): stock clients reconnect, where 4500 would end them.
          ctx.extra.socket.close(1013, 'Service unavailable: retry later');
          return false;
        }
        if (caller) {
          ctx.extra.caller = caller;
          return true;
        }
        ctx.extra.socket.close(4401, unauthenticated);
        return false;
      },
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
      onSubscribe: async (ctx, id, payload) => {
        // The key is checked again at every subscribe: a revoked key (or one moved to
        // another project) ends the socket, not just this operation.
        let caller: Caller | undefined;
        try {
          caller = await auth.authenticate(ctx.connectionParams?.['authorization']);
        } catch (error) {
          if (!isDatabaseUnavailable(error)) throw error;
          // This operation fails, retryably; the socket and its other subscriptions stay.
          return [maskError(error, 'Unexpected error.') as GraphQLError];
        }
        const before = ctx.extra.caller;
        if (!caller || !before || caller.projectId !== before.projectId || caller.keyId !== before.keyId) {
          ctx.extra.socket.close(4401, unauthenticated);
          return [new GraphQLError('Unauthenticated.', { extensions: { code: 'UNAUTHENTICATED' } })];
        }
        // ctx.subscriptions holds this socket's operations, this new one included.
        if (Object.keys(ctx.subscriptions).length > limits.maxSubscriptions) {
          return [
            new GraphQLError(`At most ${limits.maxSubscriptions} subscriptions per connection.`, {
              extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', limit: limits.maxSubscriptions },
            }),
          ];
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...services,
          ...caller,
          transport: 'websocket' as const,
          socket: ctx.extra.socket,
          params: payload,
        });
        let document: ExecutionArgs['document'];
        try {
          document = parse(payload.query);
        } catch (error) {
          // A syntax error fails this operation, not the socket and its other subscriptions.
          if (error instanceof GraphQLError || (error as Error)?.name === 'GraphQLError') {
            const e = error as GraphQLError;
            return [new GraphQLError(e.message, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } })];
          }
          throw error;
        }
        const args: ExecutionArgs = {
          schema,
          operationName: payload.operationName ?? null,
          document,
          variableValues: payload.variables ?? null,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe } satisfies EnvelopedRoot,
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors;
        // An operation whose result is a plain projection of each event gets its events
        // written straight to the socket (see graphql/event-projection.ts).
        const project = eventProjection(args.schema, args.document, args.operationName);
        if (project) (args.contextValue as GraphQLContext).direct = directSink(ctx.extra.socket, id, project, services.bus.capacity);
        return args;
      },
    },
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
    start(port, host) {
      return new Promise((resolve, reject) => {
        http.once('error', reject);
        http.listen(port, host, () => {
          http.off('error', reject);
          resolve((http.address() as AddressInfo).port);
        });
      });
    },
    drain() {
      draining = true;
    },
    stopAccepting,
    async stop() {
      await graphqlWs.close(SERVICE_RESTART, 'Service restart');
      stopAccepting();
      if (!closed) return; // a worker-only process never listened
      http.closeIdleConnections();
      // In-flight requests get a moment to finish; a client that keeps a response
      // half-read (or a keep-alive socket busy) does not hold the shutdown up.
      const force = setTimeout(() => http.closeAllConnections(), 2000);
      await closed!.finally(() => clearTimeout(force));
    },
  };
}

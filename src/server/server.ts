/**
 * One node:http server for everything on one path: GraphQL over HTTP (yoga), GraphiQL,
 * and graphql-ws websockets. The websocket path runs operations through
 * `yoga.getEnveloped`, so both transports share the same schema, context, plugins and
 * error masking.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { createYoga } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import type { GraphQLContext } from '../graphql/context.js';
import { maskError, useInputErrorCodes } from '../graphql/errors.js';
import { schema } from '../graphql/schema.js';

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
  context: GraphQLContext;
  /** Turns GraphiQL off. */
  production: boolean;
  websocket?: Partial<WebsocketLimits> | undefined;
}

export interface RunwayServer {
  /** Listens; resolves with the bound port (useful with port 0). */
  start(port: number, host: string): Promise<number>;
  /** Closes websockets with 1001 (going away), then the HTTP server. */
  stop(): Promise<void>;
  readonly http: Server;
}

interface EnvelopedRoot {
  execute(args: ExecutionArgs): unknown;
  subscribe(args: ExecutionArgs): unknown;
}

export function buildServer(options: ServerOptions): RunwayServer {
  const yoga = createYoga({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    context: () => options.context,
    graphiql: options.production ? false : { subscriptionsProtocol: 'WS', title: 'Runway' },
    // GraphiQL served from this package, not a CDN: it works on a machine without internet.
    renderGraphiQL,
    landingPage: false,
    plugins: [useInputErrorCodes()],
    // Stack traces never reach a client, in development either: maskError logs them.
    maskedErrors: { maskError, isDev: false },
  });

  const limits = { ...DEFAULT_WEBSOCKET_LIMITS, ...options.websocket };
  const http = createServer(yoga);
  // ws closes a socket that sends a larger message with 1009 (message too big).
  const wss = new WebSocketServer({ server: http, path: GRAPHQL_PATH, maxPayload: limits.maxMessageBytes });

  useServer(
    {
      // A socket that never sends connection_init is closed with 4408.
      connectionInitWaitTimeout: limits.initTimeoutMs,
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
      onSubscribe: async (ctx, _id, payload) => {
        // ctx.subscriptions holds this socket's operations, this new one included.
        if (Object.keys(ctx.subscriptions).length > limits.maxSubscriptions) {
          return [
            new GraphQLError(`At most ${limits.maxSubscriptions} subscriptions per connection.`, {
              extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', limit: limits.maxSubscriptions },
            }),
          ];
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
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
        return args;
      },
    },
    wss,
    // Pings every keepAliveMs; a socket that does not pong in time is terminated.
    limits.keepAliveMs,
  );

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
    async stop() {
      for (const socket of wss.clients) socket.close(1001, 'Server shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      if (!http.listening) return; // a worker-only process never listened
      http.closeIdleConnections();
      await new Promise<void>((resolve, reject) =>
        http.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}

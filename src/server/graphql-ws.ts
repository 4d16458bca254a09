/**
 * graphql-ws's handlers: what happens when a socket connects and at each subscribe. The
 * operations run through `yoga.getEnveloped`, so both transports share the same schema,
 * context, plugins and error masking.
 */
import { GraphQLError, type ExecutionArgs } from 'graphql';
import type { ServerOptions } from 'graphql-ws';
import type { WebSocket } from 'ws';
import type { Authenticator } from '../auth/authenticator.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import type { Caller, GraphQLContext, Services } from '../graphql/context.js';
import { codedError, maskError } from '../graphql/errors.js';
import { contentProjection, eventProjection } from '../graphql/event-projection.js';
import { resolveDocument, type PersistedDocuments } from './persisted-documents.js';
import { directSink } from './websocket.js';
import type { RunwayYoga } from './yoga-context.js';

/** What a socket's graphql-ws context keeps: the socket, and who it authenticated as. */
export type SocketExtra = { socket: WebSocket; caller?: Caller };

interface EnvelopedRoot {
  execute(args: ExecutionArgs): unknown;
  subscribe(args: ExecutionArgs): unknown;
}

export interface GraphqlWsHandlerOptions {
  yoga: RunwayYoga;
  services: Services;
  authenticator: Authenticator;
  /** Subscriptions one socket may hold at once (TOO_MANY_SUBSCRIPTIONS beyond). */
  maxSubscriptions: number;
  /** A socket that never sends connection_init is closed with 4408 after this. */
  initTimeoutMs: number;
  /**
   * Persisted documents, when configured: as on HTTP, a subscribe message may name one
   * (graphql-ws requires a `query` string: send `""` with the id).
   */
  persisted?: PersistedDocuments | undefined;
}

const unauthenticated = 'Unauthenticated: connectionParams.authorization needs a valid API key';

export function graphqlWsHandlers(options: GraphqlWsHandlerOptions): ServerOptions<Record<string, unknown> | undefined, SocketExtra> {
  const { yoga, services, authenticator: auth, maxSubscriptions } = options;
  return {
    // A socket that never sends connection_init is closed with 4408.
    connectionInitWaitTimeout: options.initTimeoutMs,
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
        // A key revoked while the socket is open ends it, on every process (see auth/authenticator.ts).
        const { socket } = ctx.extra;
        const keyId = caller.keyId;
        const stop = auth.onRevoked((keyIds) => {
          if (keyIds.has(keyId)) socket.close(4401, unauthenticated);
        });
        socket.once('close', stop);
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
        return [codedError('UNAUTHENTICATED', 'Unauthenticated.')];
      }
      // ctx.subscriptions holds this socket's operations, this new one included.
      if (Object.keys(ctx.subscriptions).length > maxSubscriptions) {
        return [
          codedError('TOO_MANY_SUBSCRIPTIONS', `At most ${maxSubscriptions} subscriptions per connection.`, { limit: maxSubscriptions }),
        ];
      }
      let query = payload.query;
      if (options.persisted) {
        const resolved = resolveDocument(options.persisted, payload as typeof payload & { documentId?: unknown });
        if ('error' in resolved) return [resolved.error];
        query = resolved.query;
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
        document = parse(query);
      } catch (error) {
        // A syntax error fails this operation, not the socket and its other subscriptions.
        if (error instanceof GraphQLError || (error as Error)?.name === 'GraphQLError') {
          const e = error as GraphQLError;
          return [codedError('GRAPHQL_PARSE_FAILED', e.message)];
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
      // An operation whose result is a plain projection of each event (of some of a
      // content stream's deliveries) gets them written straight to the socket (see
      // graphql/event-projection.ts); the others are executed and sent as usual, in order.
      const { socket } = ctx.extra;
      const events = eventProjection(args.schema, args.document, args.operationName);
      const content = events ? undefined : contentProjection(args.schema, args.document, args.operationName);
      const direct = events
        ? directSink(socket, id, events, services.bus.capacity)
        : content && directSink(socket, id, content, services.bus.capacity);
      if (direct) (args.contextValue as GraphQLContext).direct = direct;
      return args;
    },
  };
}

/**
 * What a GraphQL operation's context is made of, on both transports: the use cases, who
 * the caller is, and how the operation came. HTTP requests start with the caller the node
 * handler authenticated (see graphql-http.ts); the websocket path passes a complete
 * context of its own (see graphql-ws.ts).
 */
import type { YogaInitialContext, YogaServerInstance } from 'graphql-yoga';
import type { Caller, GraphQLContext, Services } from '../graphql/context.js';
import { codedError } from '../graphql/errors.js';

/** The context a request starts with: who it is from, and how it came. */
export type RequestContext = { caller: Caller };
export type Transport = { transport: 'http' | 'websocket' };
export type RunwayYoga = YogaServerInstance<RequestContext, GraphQLContext & Transport>;

/** Only the GraphiQL page is served without a key; it never reaches a resolver. */
export const NO_CALLER: Caller = Object.freeze({ projectId: '', keyId: 'anonymous' });

const NOTHING_TO_ADD = Object.freeze({});

/** yoga's `context` option: the HTTP request's caller and the use cases. */
export function requestContext(services: Services) {
  return (initial: YogaInitialContext & RequestContext): GraphQLContext & Transport => {
    // Already complete: nothing to add (returning it would copy it onto itself, key by key).
    if ('transport' in initial) return NOTHING_TO_ADD as GraphQLContext & Transport;
    // The GraphiQL page is served without a key; nothing else runs without one.
    if (!initial.caller.projectId) {
      throw codedError('UNAUTHENTICATED', 'A valid API key is required.');
    }
    return { ...services, ...initial.caller, transport: 'http' as const };
  };
}

/**
 * Per-API-key rate limits on writes and on new subscriptions (rate-limiter-flexible:
 * fixed windows, in memory or in Redis). One set of counters per server, which every
 * transport counts against: GraphQL mutations and subscriptions through an envelop plugin
 * (so HTTP, SSE and websocket operations all count), and REST writes (`/v1` POSTs, see
 * rest-http.ts), each counted as one mutation. A refused operation gets RATE_LIMITED with
 * `retryAfterSeconds` (and, over HTTP, status 429 with Retry-After). A refused operation
 * still counts, so hammering does not get a client through sooner.
 *
 * With REDIS_URL the counters live in Redis and hold across every gateway process; without
 * it each process counts alone, so N gateways allow up to N times the limit.
 */
import { Kind, getOperationAST, type GraphQLError, type DocumentNode, type SelectionSetNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { RateLimits } from '../config.js';
import type { Caller } from '../domain/caller.js';
import { codedError, httpStatus } from '../graphql/errors.js';

interface Limiter {
  limiter: RateLimiterAbstract;
  perMinute: number;
  what: string;
}

/** Counters in Redis, under a prefix of this deployment's own. */
export interface SharedCounters {
  redis: Redis;
  prefix: string;
}

/** Why a key was refused: what to tell it, and when to come back. */
export interface RateRefusal {
  message: string;
  retryAfterSeconds: number;
  /** The budget per minute. */
  limit: number;
}

/** Counts `points` operations of the key: the refusal, or undefined when they may go on. */
export type RateCounter = (keyId: string, points: number) => Promise<RateRefusal | undefined>;

/** The counters of one server; a limit of 0 (unlimited) has none. */
export interface RateLimiters {
  /** Mutation root fields; a REST write counts as one. */
  mutations: RateCounter | undefined;
  subscriptions: RateCounter | undefined;
}

function limiter(perMinute: number, what: string, shared: SharedCounters | undefined): Limiter | undefined {
  if (perMinute <= 0) return undefined;
  const options = { points: perMinute, duration: 60, keyPrefix: `${shared?.prefix ?? 'runway'}:rl:${what}` };
  const memory = new RateLimiterMemory(options);
  const redis = shared?.redis;
  // If Redis is unreachable, each process falls back to counting in memory rather than
  // refusing (or waving through) every operation.
  const store = redis ? new RateLimiterRedis({ ...options, storeClient: redis, insuranceLimiter: memory }) : memory;
  return { limiter: store, perMinute, what };
}

export function createRateLimiters(limits: RateLimits, shared?: SharedCounters): RateLimiters {
  const mutations = limiter(limits.mutationsPerMinute, 'mutations', shared);
  const subscriptions = limiter(limits.subscriptionsPerMinute, 'subscriptions', shared);

  async function refusal(l: Limiter, keyId: string, points: number): Promise<RateRefusal | undefined> {
    try {
      await l.limiter.consume(keyId, points);
      return undefined;
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      const retryAfterSeconds = Math.max(1, Math.ceil(error.msBeforeNext / 1000));
      return {
        message: `Rate limit exceeded: at most ${l.perMinute} ${l.what} per minute per API key. Retry in ${retryAfterSeconds} s.`,
        retryAfterSeconds,
        limit: l.perMinute,
      };
    }
  }

  const counter = (l: Limiter | undefined): RateCounter | undefined => l && ((keyId, points) => refusal(l, keyId, points));
  return { mutations: counter(mutations), subscriptions: counter(subscriptions) };
}

/** The context fields the plugin reads. */
type RateLimitedContext = Caller & { transport?: 'http' | 'websocket' };

/** The limits on GraphQL operations: mutations (each root field counts) and new subscriptions. */
export function useRateLimits({ mutations, subscriptions }: RateLimiters): Plugin<RateLimitedContext> {
  function refused(refusal: RateRefusal | undefined, context: RateLimitedContext): GraphQLError | undefined {
    if (!refusal) return undefined;
    const { message, retryAfterSeconds, limit } = refusal;
    return codedError('RATE_LIMITED', message, {
      retryAfterSeconds,
      limit,
      // yoga turns this into the HTTP status and header, and does not show it.
      ...(context.transport === 'http' ? httpStatus('RATE_LIMITED', { headers: { 'retry-after': String(retryAfterSeconds) } }) : {}),
    });
  }

  return {
    // Not async: a query (most requests) passes through without a promise to await.
    onExecute({ args, setResultAndStopExecution }) {
      if (!mutations) return;
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'mutation') return;
      const context = args.contextValue;
      return mutations(context.keyId, rootFieldCount(operation.selectionSet, args.document)).then((refusal) => {
        const error = refused(refusal, context);
        if (error) setResultAndStopExecution({ errors: [error] });
      });
    },
    async onSubscribe({ args, setResultAndStopExecution }) {
      if (!subscriptions) return;
      const error = refused(await subscriptions(args.contextValue.keyId, 1), args.contextValue);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}

/** Root fields a mutation runs, through fragments: `{ a: createRun b: createRun }` is two. */
function rootFieldCount(selectionSet: SelectionSetNode, document: DocumentNode, seen = new Set<string>()): number {
  let count = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) count += selection.name.value === '__typename' ? 0 : 1;
    else if (selection.kind === Kind.INLINE_FRAGMENT) count += rootFieldCount(selection.selectionSet, document, seen);
    else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      const fragment = document.definitions.find((d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === selection.name.value);
      if (fragment?.kind === Kind.FRAGMENT_DEFINITION) count += rootFieldCount(fragment.selectionSet, document, seen);
    }
  }
  return Math.max(count, 1);
}

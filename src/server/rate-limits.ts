/**
 * Per-API-key rate limits on mutations and on new subscriptions (rate-limiter-flexible:
 * fixed windows, in memory or in Redis). An envelop plugin, so HTTP, SSE and websocket
 * operations all count. A refused operation gets RATE_LIMITED with `retryAfterSeconds`
 * (and, over HTTP, status 429 with Retry-After). A refused operation still counts, so
 * hammering does not get a client through sooner.
 *
 * With REDIS_URL the counters live in Redis and hold across every gateway process; without
 * it each process counts alone, so N gateways allow up to N times the limit.
 */
import { Kind, getOperationAST, type GraphQLError, type DocumentNode, type SelectionSetNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { RateLimits } from '../config.js';
import type { Caller } from '../graphql/context.js';
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

/** The context fields the plugin reads. */
type RateLimitedContext = Caller & { transport?: 'http' | 'websocket' };

export function useRateLimits(limits: RateLimits, shared?: SharedCounters): Plugin<RateLimitedContext> {
  const mutations = limiter(limits.mutationsPerMinute, 'mutations', shared);
  const subscriptions = limiter(limits.subscriptionsPerMinute, 'subscriptions', shared);

  async function refusal(l: Limiter, context: RateLimitedContext, points: number): Promise<GraphQLError | undefined> {
    try {
      await l.limiter.consume(context.keyId, points);
      return undefined;
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      const retryAfterSeconds = Math.max(1, Math.ceil(error.msBeforeNext / 1000));
      return codedError(
        'RATE_LIMITED',
        `Rate limit exceeded: at most ${l.perMinute} ${l.what} per minute per API key. Retry in ${retryAfterSeconds} s.`,
        {
          retryAfterSeconds,
          limit: l.perMinute,
          // yoga turns this into the HTTP status and header, and does not show it.
          ...(context.transport === 'http' ? httpStatus('RATE_LIMITED', { headers: { 'retry-after': String(retryAfterSeconds) } }) : {}),
        },
      );
    }
  }

  return {
    // Not async: a query (most requests) passes through without a promise to await.
    onExecute({ args, setResultAndStopExecution }) {
      if (!mutations) return;
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'mutation') return;
      return refusal(mutations, args.contextValue, rootFieldCount(operation.selectionSet, args.document)).then((error) => {
        if (error) setResultAndStopExecution({ errors: [error] });
      });
    },
    async onSubscribe({ args, setResultAndStopExecution }) {
      if (!subscriptions) return;
      const error = await refusal(subscriptions, args.contextValue, 1);
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

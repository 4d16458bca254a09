/**
 * HTTP requests and GraphQL operations, observed: a latency histogram each (labels from
 * fixed sets, see metrics.ts) and, tracing on, a server span per request (continuing a
 * caller's traceparent) and a span per operation.
 *
 * Per request this costs a `finish` listener and one histogram observation; the route is
 * what the REST router matched (noted on the request, no second match).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { observeHttp, observeOperation } from './metrics.js';
import { contextOf, SpanKind, startSpan, tracingOn, withSpan, failed } from './tracing.js';

const ROUTE = Symbol('runway.route');
type Noted = IncomingMessage & { [ROUTE]?: string };

/** The REST route pattern that serves the request (its metrics label and span name). */
export function noteRoute(req: IncomingMessage, pattern: string): void {
  (req as Noted)[ROUTE] = pattern;
}

/** Paths labelled as themselves; any other outside the APIs is `other` (clients choose paths). */
const FIXED_PATHS = new Set(['/graphql', '/health', '/ready', '/metrics']);

/**
 * Starts observing a request; `handle` serves it (in the request's span, tracing on).
 * @param api which API the path belongs to (`rest`, `graphql`, `other`)
 */
export function observeRequest(req: IncomingMessage, res: ServerResponse, path: string | undefined, api: string, handle: () => void): void {
  const started = performance.now();
  const method = req.method ?? 'GET';
  const span = tracingOn
    ? startSpan(`${method} ${api}`, { 'http.request.method': method, 'url.path': path ?? '' }, SpanKind.SERVER, contextOf(req.headers))
    : undefined;
  res.once('finish', () => {
    const noted = (req as Noted)[ROUTE];
    const route = noted ?? (path && FIXED_PATHS.has(path) ? path : api === 'rest' ? 'unmatched' : 'other');
    observeHttp(api, route, method, res.statusCode, (performance.now() - started) / 1000);
    if (!span) return;
    span.updateName(`${method} ${route}`);
    span.setAttributes({ 'http.route': route, 'http.response.status_code': res.statusCode });
    if (res.statusCode >= 500) failed(span, new Error(`HTTP ${res.statusCode}`));
    span.end();
  });
  if (span) withSpan(span, handle);
  else handle();
}

/**
 * Every executed query and mutation (HTTP, the fast path, websockets), timed by operation
 * name and type, and in a span of its own when tracing is on: the resolvers' statements
 * become its children.
 */
export function useOperationObservation(): Plugin {
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const started = performance.now();
      const operation = getOperationAST(args.document, args.operationName);
      const name = operation?.name?.value ?? args.operationName;
      const type = operation?.operation ?? 'unknown';
      if (tracingOn) {
        const span = startSpan(`graphql ${type} ${name ?? 'anonymous'}`, {
          'graphql.operation.type': type,
          'graphql.operation.name': name ?? '',
        });
        setExecuteFn(async (execArgs) => {
          try {
            const result = await withSpan(span, () => executeFn(execArgs));
            if ('errors' in result && result.errors?.length) span.setAttribute('graphql.errors', result.errors.length);
            return result;
          } catch (error) {
            failed(span, error);
            throw error;
          } finally {
            span.end();
          }
        });
      }
      return {
        onExecuteDone() {
          observeOperation(name, type, (performance.now() - started) / 1000);
        },
      };
    },
  };
}

/**
 * The hot path for what GraphQL clients send most: one query or mutation as a JSON POST.
 * It runs the operation through `yoga.getEnveloped`, as the websocket path does, so every
 * envelop plugin still applies (parse and validation caches, graphql-armor, introspection
 * off, rate limits, error masking and codes), but skips yoga's fetch-API layer
 * (a whatwg Request, Headers, AbortSignal and Response per request), which costs more
 * CPU than the operation itself. The response is what yoga would send: same status,
 * headers and body (`processRegularResult`, yoga's own, for any result with errors).
 *
 * Whatever it does not recognise as that plain case (a batch, a subscription, an unusual
 * Accept, extra body keys, a parse or validation error) it hands to yoga untouched, so
 * the spec conformance of those paths stays yoga's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getOperationAST, parse as parseDocument, type DocumentNode, type ExecutionResult, type GraphQLError } from 'graphql';
import { createLRUCache, processRegularResult, type YogaServerInstance } from 'graphql-yoga';
import type { Caller, GraphQLContext, Services } from '../graphql/context.js';

export interface GraphQLParams {
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
  extensions?: Record<string, unknown> | null;
}

type Yoga = YogaServerInstance<{ caller: Caller }, GraphQLContext & { transport: 'http' | 'websocket' }>;

const REGULAR_TYPES = ['application/graphql-response+json', 'application/json'] as const;
const ALLOWED_KEYS = new Set(['query', 'variables', 'operationName', 'extensions']);

/**
 * The media type yoga would answer a regular result with, or undefined when the Accept
 * header asks for something else first (yoga decides those). Mirrors yoga's choice: the
 * first acceptable entry wins; a wildcard means application/json.
 */
export function regularMediaType(accept: string | undefined): (typeof REGULAR_TYPES)[number] | undefined {
  for (const entry of (accept || '*/*').replace(/\s/g, '').toLowerCase().split(',')) {
    const [type, ...params] = entry.split(';');
    const charset = params.find((p) => p.includes('charset=')) ?? 'charset=utf-8';
    if (!type || charset !== 'charset=utf-8') continue;
    const [pre, suf] = type.split('/');
    const matches = REGULAR_TYPES.filter((t) => {
      const [tp, ts] = t.split('/');
      return (pre === '*' || pre === tp) && (suf === '*' || suf === ts);
    });
    if (matches.length) return matches.at(-1);
  }
  return undefined;
}

/** The body's GraphQL parameters if it is the plain case, else undefined. */
export function plainParams(body: string): GraphQLParams | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const p = parsed as Record<string, unknown>;
  for (const key of Object.keys(p)) if (!ALLOWED_KEYS.has(key)) return undefined;
  const isObject = (v: unknown) => v == null || (typeof v === 'object' && !Array.isArray(v));
  if (typeof p['query'] !== 'string' || !isObject(p['variables']) || !isObject(p['extensions'])) return undefined;
  if (p['operationName'] != null && typeof p['operationName'] !== 'string') return undefined;
  return p as unknown as GraphQLParams;
}

export function createFastPath(yoga: Yoga, services: Services, maxTokens: number) {
  const checkedSyntax = createLRUCache<boolean>({ max: 1000 });
  /**
   * Serves the request if it is the plain case and returns true; returns false (having
   * written nothing) to let yoga serve it.
   */
  return async function serve(req: IncomingMessage, res: ServerResponse, caller: Caller, body: string): Promise<boolean> {
    const mediaType = regularMediaType(req.headers.accept);
    const params = mediaType && plainParams(body);
    if (!params) return false;
    const { parse, validate, contextFactory, execute, schema } = yoga.getEnveloped({
      ...services,
      ...caller,
      transport: 'http' as const,
      req,
      params,
    });
    // A syntax error (or too many tokens) and a validation error are yoga's to report,
    // with its status codes. The syntax is checked on the side first: a failed parse
    // through the envelop would be cached by yoga as a bare error and reported without
    // its code. Each query text is checked once.
    let syntaxOk = checkedSyntax.get(params.query);
    if (syntaxOk === undefined) {
      try {
        parseDocument(params.query, { maxTokens });
        syntaxOk = true;
      } catch {
        syntaxOk = false;
      }
      checkedSyntax.set(params.query, syntaxOk);
    }
    if (!syntaxOk) return false;
    let document: DocumentNode;
    try {
      document = parse(params.query);
    } catch {
      return false;
    }
    if ((document as { kind?: unknown })?.kind !== 'Document') return false;
    const invalid = validate(schema, document);
    if (!Array.isArray(invalid) || invalid.length > 0) return false;
    const operation = getOperationAST(document, params.operationName);
    if (!operation || operation.operation === 'subscription') return false;

    const result = (await execute({
      schema,
      document,
      variableValues: params.variables ?? null,
      operationName: params.operationName ?? null,
      contextValue: await contextFactory(),
    })) as ExecutionResult;

    if (!result.errors?.length && !result.extensions) {
      const text = JSON.stringify(result);
      res.writeHead(200, {
        'content-type': `${mediaType}; charset=utf-8`,
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
      return true;
    }
    // Errors: yoga's own processor picks the status (429 for RATE_LIMITED...) and strips
    // what is internal (extensions.http), as it would have.
    const response = processRegularResult(result as ExecutionResult & { errors?: GraphQLError[] }, yoga.fetchAPI, mediaType);
    const text = await response.text();
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(text);
    return true;
  };
}

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
import {
  getOperationAST,
  parse as parseDocument,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLError,
  type OperationDefinitionNode,
} from 'graphql';
import { createLRUCache, processRegularResult } from 'graphql-yoga';
import type { Caller, Services } from '../graphql/context.js';
import { markUnavailable } from '../graphql/errors.js';
import { resolveDocument, type PersistedDocuments } from './persisted-documents.js';
import type { RunwayYoga } from './yoga-context.js';

export interface GraphQLParams {
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
  extensions?: Record<string, unknown> | null;
}

const REGULAR_TYPES = ['application/graphql-response+json', 'application/json'] as const;
const ALLOWED_KEYS = new Set(['query', 'variables', 'operationName', 'extensions']);
/** With persisted documents, a request may name one instead of sending a query. */
const ALLOWED_KEYS_PERSISTED = new Set([...ALLOWED_KEYS, 'documentId']);

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

/**
 * The body's GraphQL parameters if it is the plain case, else undefined. With persisted
 * documents the query may be missing (an id stands for it); the caller resolves it.
 */
export function plainParams(body: string, persisted = false): GraphQLParams | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const p = parsed as Record<string, unknown>;
  const allowed = persisted ? ALLOWED_KEYS_PERSISTED : ALLOWED_KEYS;
  for (const key of Object.keys(p)) if (!allowed.has(key)) return undefined;
  const isObject = (v: unknown) => v == null || (typeof v === 'object' && !Array.isArray(v));
  if (!isObject(p['variables']) || !isObject(p['extensions'])) return undefined;
  if (typeof p['query'] !== 'string' && !(persisted && p['query'] == null)) return undefined;
  if (p['operationName'] != null && typeof p['operationName'] !== 'string') return undefined;
  return p as unknown as GraphQLParams;
}

/**
 * What the fast path knows of a query text once it has checked it: its document and, per
 * operation name of the document asked for, the operation to run, or false where yoga
 * must answer (a subscription).
 */
interface Plan {
  document: DocumentNode;
  operations: Map<string | null, OperationDefinitionNode | false>;
}

/**
 * @param persisted the persisted documents, when configured: a request naming one runs its
 * text here; whatever yoga's plugin would refuse (an unknown id, a query where only
 * persisted documents run) is left to yoga, which answers it with its code.
 */
export function createFastPath(yoga: RunwayYoga, services: Services, maxTokens: number, persisted?: PersistedDocuments) {
  // Each distinct query text is parsed and validated once, through the envelop (every
  // plugin's parse and validation hooks and rules, graphql-armor's among them), and the
  // outcome kept: a document's validity depends only on its text, the schema and the
  // rules, and all three are fixed when the server starts. (yoga caches the same results;
  // reading them back through the envelop was 3.5% of the run read's CPU in a profile.)
  const plans = createLRUCache<Plan | false>({ max: 1000 });
  // yoga is a proxy (a request handler with properties): read its envelop once.
  const getEnveloped = yoga.getEnveloped;
  const mediaTypes = new Map<string | undefined, ReturnType<typeof regularMediaType>>();

  /**
   * Serves the request if it is the plain case and returns true; returns false (having
   * written nothing) to let yoga serve it.
   */
  return async function serve(req: IncomingMessage, res: ServerResponse, caller: Caller, body: string): Promise<boolean> {
    const accept = req.headers.accept;
    let mediaType = mediaTypes.get(accept);
    if (mediaType === undefined && !mediaTypes.has(accept)) {
      mediaType = regularMediaType(accept);
      if (mediaTypes.size >= 100) mediaTypes.clear();
      mediaTypes.set(accept, mediaType);
    }
    if (!mediaType) return false;
    const params = plainParams(body, persisted !== undefined);
    if (!params) return false;
    if (persisted) {
      const resolved = resolveDocument(persisted, params);
      if ('error' in resolved) return false;
      params.query = resolved.query;
    }
    const { parse, validate, contextFactory, execute, schema } = getEnveloped({
      ...services,
      ...caller,
      transport: 'http' as const,
      req,
      params,
    });
    let plan = plans.get(params.query);
    if (plan === undefined) {
      plan = checked(params.query, parse, (document) => validate(schema, document));
      plans.set(params.query, plan);
    }
    if (!plan) return false;
    const name = params.operationName ?? null;
    let operation = plan.operations.get(name);
    if (operation === undefined) {
      const found = getOperationAST(plan.document, name);
      // A name the document lacks is not kept: clients could send any number of them.
      if (!found) return false;
      operation = found.operation !== 'subscription' ? found : false;
      plan.operations.set(name, operation);
    }
    if (!operation) return false;

    const result = (await execute({
      schema,
      document: plan.document,
      variableValues: params.variables ?? null,
      operationName: name,
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
    // Errors: yoga's own processor picks the status (429 for RATE_LIMITED, 503 for
    // SERVICE_UNAVAILABLE...) and strips what is internal (extensions.http), as it would have.
    markUnavailable(result);
    const response = processRegularResult(result as ExecutionResult & { errors?: GraphQLError[] }, yoga.fetchAPI, mediaType);
    const text = await response.text();
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(text);
    return true;
  };

  /**
   * The query's plan, or false when yoga must answer it. A syntax error (or too many
   * tokens) and a validation error are yoga's to report, with its status codes. The
   * syntax is checked on the side first: a failed parse through the envelop would be
   * cached by yoga as a bare error and reported without its code.
   */
  function checked(
    query: string,
    parse: (source: string) => DocumentNode,
    validate: (document: DocumentNode) => ReadonlyArray<GraphQLError>,
  ): Plan | false {
    try {
      parseDocument(query, { maxTokens });
    } catch {
      return false;
    }
    let document: DocumentNode;
    try {
      document = parse(query);
    } catch {
      return false;
    }
    if ((document as { kind?: unknown })?.kind !== 'Document') return false;
    const invalid = validate(document);
    if (!Array.isArray(invalid) || invalid.length > 0) return false;
    return { document, operations: new Map() };
  }
}

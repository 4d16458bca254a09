/**
 * Method and path pattern to handler: `get('/v1/threads/{thread_id}/runs/{run_id}', ...)`.
 * Patterns are OpenAI's paths (its OpenAPI description writes them the same way), and a
 * handler's `params` are typed from its pattern. Where a literal segment and a parameter
 * both match (`POST /v1/threads/runs` and `POST /v1/threads/{thread_id}`), the literal
 * wins. Parameters come decoded.
 */
import { storableText } from '../domain/text.js';

export type Method = 'GET' | 'POST' | 'DELETE';

/** The parameters a pattern names: `'/v1/threads/{thread_id}'` has `{ thread_id: string }`. */
export type PathParams<P extends string> = P extends `${string}{${infer Name}}${infer Rest}`
  ? { [K in Name]: string } & PathParams<Rest>
  : unknown;

export interface Route<H> {
  method: Method;
  pattern: string;
  handler: H;
}

export interface Match<H> {
  route: Route<H>;
  params: Record<string, string>;
}

type Segment = { literal: string; param?: undefined } | { literal?: undefined; param: string };

interface Compiled<H> {
  route: Route<H>;
  segments: Segment[];
  literals: number;
}

export class Router<H> {
  /** By method and segment count, most literal segments first. */
  private readonly table = new Map<string, Compiled<H>[]>();

  constructor(routes: readonly Route<H>[]) {
    for (const r of routes) {
      const segments = r.pattern
        .split('/')
        .slice(1)
        .map((s): Segment => (/^\{\w+\}$/.test(s) ? { param: s.slice(1, -1) } : { literal: s }));
      const key = `${r.method} ${segments.length}`;
      const list = this.table.get(key) ?? [];
      if (list.some((c) => c.route.pattern === r.pattern)) throw new Error(`two routes for ${r.method} ${r.pattern}`);
      list.push({ route: r, segments, literals: segments.filter((s) => s.literal !== undefined).length });
      list.sort((a, b) => b.literals - a.literals);
      this.table.set(key, list);
    }
  }

  /** The route and parameters of a request, or undefined when no route takes it. */
  match(method: string | undefined, path: string): Match<H> | undefined {
    const parts = path.split('/').slice(1);
    const candidates = this.table.get(`${method ?? 'GET'} ${parts.length}`);
    for (const { route, segments } of candidates ?? []) {
      const params = paramsOf(segments, parts);
      if (params) return { route, params };
    }
    return undefined;
  }
}

/** The parameters of a path that has the pattern's segments, or undefined. */
function paramsOf(segments: Segment[], parts: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (const [i, segment] of segments.entries()) {
    const part = parts[i] ?? '';
    if (segment.param === undefined) {
      if (part !== segment.literal) return undefined;
      continue;
    }
    const value = decoded(part);
    if (value === undefined) return undefined;
    params[segment.param] = value;
  }
  return params;
}

/**
 * A path segment as its text, or undefined if it is empty or not percent-encoded UTF-8.
 * An id with a NUL names nothing (ids are made here): it becomes U+FFFD and is not found.
 */
function decoded(part: string): string | undefined {
  if (!part) return undefined;
  if (!part.includes('%')) return part;
  try {
    return storableText(decodeURIComponent(part));
  } catch {
    return undefined;
  }
}

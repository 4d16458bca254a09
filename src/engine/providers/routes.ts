/**
 * Model routes: which OpenAI-compatible endpoint serves which model names (MODEL_ROUTES).
 * Pure parsing and matching; the providers are made from the routes in app.ts.
 *
 * A route names its models by patterns: an exact name (`gpt-4o-mini`), or a prefix ending
 * in `*` (`gpt-*`, `llama*`; `*` alone takes every name). Routes are tried in order, the
 * first match wins. The scripted model's names (`scripted`, `scripted-*`) are never
 * routed: they stay the built-in offline model. OPENAI_BASE_URL / OPENAI_API_KEY, when
 * set, are a last route that takes every other name.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export interface ModelRoute {
  /** Exact names, or prefixes ending in `*`. */
  models: string[];
  /** The endpoint's base URL (the client's default, OpenAI's, when unset). */
  baseURL: string | undefined;
  /** The key, resolved (from `apiKey` or the variable `apiKeyEnv` names). */
  apiKey: string | undefined;
  /** @default 600000 (the client's default) */
  timeoutMs: number | undefined;
  /** Retries of 429, 5xx and network errors (OPENAI_MAX_RETRIES unless the route says). */
  maxRetries: number;
  /** Tokens the models of this route take in a prompt: AUTO truncation fits prompts to it. */
  contextWindow: number | undefined;
}

const pattern = z
  .string()
  .min(1)
  .max(256)
  .refine((p) => !p.slice(0, -1).includes('*'), { message: "'*' may only end a pattern" });

const routeSchema = z
  .strictObject({
    models: z.union([pattern, z.array(pattern).min(1)]),
    baseUrl: z.url().optional(),
    apiKey: z.string().min(1).optional(),
    apiKeyEnv: z.string().min(1).optional(),
    timeoutMs: z.number().int().min(1).optional(),
    maxRetries: z.number().int().min(0).optional(),
    contextWindow: z.number().int().min(1).optional(),
  })
  .refine((r) => !(r.apiKey && r.apiKeyEnv), { message: 'give apiKey or apiKeyEnv, not both' });

const routesSchema = z.array(routeSchema);

/** Whether the built-in scripted model serves `model`. */
export function isScriptedModel(model: string): boolean {
  return model === 'scripted' || model.startsWith('scripted-');
}

/** Whether a route's pattern takes `model`. */
export function patternMatches(pattern: string, model: string): boolean {
  return pattern.endsWith('*') ? model.startsWith(pattern.slice(0, -1)) : model === pattern;
}

/** The first route that serves `model`, if any (never one for the scripted model's names). */
export function routeFor(routes: readonly ModelRoute[], model: string): ModelRoute | undefined {
  if (isScriptedModel(model)) return undefined;
  return routes.find((r) => r.models.some((p) => patternMatches(p, model)));
}

/**
 * The routes MODEL_ROUTES gives: `value` is a JSON array, or the path of a file that holds
 * one. Keys named by `apiKeyEnv` are read from `env`; a variable that is not set is an
 * error, as a route that can only fail is. Throws with what is wrong.
 */
export function parseModelRoutes(
  value: string,
  env: NodeJS.ProcessEnv,
  defaults: { maxRetries: number },
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): ModelRoute[] {
  const trimmed = value.trim();
  let text = trimmed;
  if (!trimmed.startsWith('[')) {
    try {
      text = readFile(trimmed);
    } catch (error) {
      throw new Error(`cannot read the routes file '${trimmed}': ${(error as Error).message}`, { cause: error });
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = routesSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `[${i.path.join('.')}] ${i.message}`).join('; '));
  }
  return parsed.data.map((r, i) => {
    let apiKey = r.apiKey;
    if (r.apiKeyEnv) {
      apiKey = env[r.apiKeyEnv] || undefined;
      if (!apiKey) throw new Error(`[${i}.apiKeyEnv] the variable ${r.apiKeyEnv} is not set`);
    }
    return {
      models: typeof r.models === 'string' ? [r.models] : r.models,
      baseURL: r.baseUrl,
      apiKey,
      timeoutMs: r.timeoutMs,
      maxRetries: r.maxRetries ?? defaults.maxRetries,
      contextWindow: r.contextWindow,
    };
  });
}

/**
 * Every route, the catch-all last: the routes MODEL_ROUTES gives, then (when
 * OPENAI_BASE_URL or OPENAI_API_KEY is set) one that takes every other name.
 */
export function allRoutes(
  routes: readonly ModelRoute[],
  openai: { baseURL: string | undefined; apiKey: string | undefined; maxRetries: number } | undefined,
): ModelRoute[] {
  const all = [...routes];
  if (openai) {
    all.push({
      models: ['*'],
      baseURL: openai.baseURL,
      apiKey: openai.apiKey,
      timeoutMs: undefined,
      maxRetries: openai.maxRetries,
      contextWindow: undefined,
    });
  }
  return all;
}

/**
 * OpenAI's OpenAPI description (`../shared/openai/openapi.yaml` beside the repository), the
 * wire contract of the REST API: every answer a spec gets is held to the schema the
 * description gives the operation and status it answers.
 *
 * - `expectMatches('RunObject', body)` checks one value against a component schema.
 * - `contractFetch()` is a fetch (for a test and for the official client's `fetch` option)
 *   that checks every `/v1` answer against the schema of its operation (path, method,
 *   status): a documented status's schema; an error status the description leaves out,
 *   `ErrorResponse` (it documents only 200 and 429 for these paths, and every API error
 *   has that shape). Each mismatch is kept in `violations`, for the spec's `afterEach`
 *   (throwing inside the client's fetch would read as a network error, and be retried).
 *
 * The description is OpenAPI 3.1 (JSON Schema 2020-12, Ajv2020) with 3.0 leftovers, read
 * as the API means them: `nullable: true` allows null (also as an `allOf` member of its
 * own), and `format: unixtime` is an integer. Two readings make it stricter than it says,
 * so that a field Runway invents or misspells fails: an object schema that lists its
 * properties allows no other (`additionalProperties: false`, but in a multi-part
 * `allOf`, where it would refuse the other parts' properties). One reading makes it looser,
 * where the API itself answers otherwise: an empty list's `first_id` and `last_id` are
 * null (the Assistants list schemas say string; the API sends null, as its newer list
 * schemas, `ThreadItemListResource` say, document).
 *
 * Parsing the 3 MB YAML takes seconds: it is done once per process, and the parsed
 * description is kept in the system's temporary directory for the next test files.
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';

export const OPENAPI_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/openai/openapi.yaml');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Operation {
  template: string;
  method: string;
  /** Literal segments first, as the router prefers them. */
  literals: number;
  pattern: RegExp;
  responses: JsonObject;
}

/** The description, parsed (from the cache when the file has not changed since). */
function loadDescription(): JsonObject {
  const { size, mtimeMs } = statSync(OPENAPI_PATH);
  const cached = join(tmpdir(), `runway-openapi-${size}-${Math.round(mtimeMs)}.json`);
  if (existsSync(cached)) {
    try {
      return JSON.parse(readFileSync(cached, 'utf8')) as JsonObject;
    } catch {
      // A cache another process is writing, or a broken one: parse the YAML again.
    }
  }
  const description = parse(readFileSync(OPENAPI_PATH, 'utf8'), { maxAliasCount: -1 }) as JsonObject;
  const partial = `${cached}.${process.pid}`;
  writeFileSync(partial, JSON.stringify(description));
  renameSync(partial, cached);
  return description;
}

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Component names some multi-part `allOf` refers to: closing them would refuse the other parts' properties. */
function allOfParts(node: Json, found = new Set<string>()): Set<string> {
  if (Array.isArray(node)) for (const item of node) allOfParts(item, found);
  else if (isObject(node)) {
    const allOf = node['allOf'];
    if (Array.isArray(allOf) && allOf.filter((p) => !(isObject(p) && Object.keys(p).join() === 'nullable')).length > 1) {
      for (const part of allOf) if (isObject(part) && typeof part['$ref'] === 'string') found.add(part['$ref'].split('/').pop() ?? '');
    }
    for (const value of Object.values(node)) allOfParts(value, found);
  }
  return found;
}

/** A schema as the API means it (see the file's comment); `open`: a part of an `allOf`, left open. */
function readSchema(node: Json, open = false): Json {
  if (Array.isArray(node)) return node.map((item) => readSchema(item));
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  let nullable = node['nullable'] === true;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'nullable') continue;
    if (key === 'allOf' && Array.isArray(value)) {
      // `{ nullable: true }` as an allOf member makes the whole nullable.
      const parts = value.filter((part) => {
        const marker = isObject(part) && Object.keys(part).join() === 'nullable';
        if (marker && part['nullable'] === true) nullable = true;
        return !marker;
      });
      out[key] = parts.map((part) => readSchema(part, parts.length > 1));
    } else if (key === 'properties' && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, readSchema(schema)]));
    } else if (key === 'format' && value === 'unixtime') {
      out[key] = 'unixtime';
    } else {
      out[key] = readSchema(value);
    }
  }
  if (isObject(out['properties']) && !('additionalProperties' in out) && !('patternProperties' in out) && !open) {
    out['additionalProperties'] = false;
  }
  return nullable ? { anyOf: [out, { type: 'null' }] } : out;
}

const ROOT = 'openai';
/** Where the API's own answers differ from its description (see the file's comment). */
const LISTS = ['ListAssistantsResponse', 'ListMessagesResponse', 'ListRunsResponse', 'ListRunStepsResponse'];

function build() {
  const description = loadDescription();
  const components = description['components'] as JsonObject;
  const sources = components['schemas'] as JsonObject;
  const shared = allOfParts(description);
  const schemas: JsonObject = {};
  for (const [name, schema] of Object.entries(sources)) schemas[name] = readSchema(schema, shared.has(name));
  for (const name of LISTS) {
    const properties = (schemas[name] as JsonObject)['properties'] as JsonObject;
    for (const field of ['first_id', 'last_id']) properties[field] = { anyOf: [properties[field] ?? {}, { type: 'null' }] };
  }

  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  // ajv-formats is CommonJS: its plugin is the module itself.
  const addFormats = addFormatsModule as unknown as (a: Ajv2020) => void;
  addFormats(ajv);
  ajv.addFormat('unixtime', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= 0 });
  ajv.addSchema({ $id: ROOT, components: { schemas, responses: components['responses'] ?? {} } });

  const operations: Operation[] = [];
  for (const [template, item] of Object.entries(description['paths'] as JsonObject)) {
    if (!isObject(item)) continue;
    for (const [method, operation] of Object.entries(item)) {
      if (!isObject(operation) || !isObject(operation['responses'])) continue;
      const segments = template.split('/').slice(1);
      const pattern = new RegExp(
        `^/${segments.map((s) => (/^\{.+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))).join('/')}$`,
      );
      const literals = segments.filter((s) => !s.startsWith('{')).length;
      operations.push({ template, method, literals, pattern, responses: operation['responses'] });
    }
  }
  operations.sort((a, b) => b.literals - a.literals);

  const validators = new Map<string, ValidateFunction>();
  function validator(name: string): ValidateFunction {
    let validate = validators.get(name);
    if (!validate) {
      if (!(name in schemas)) throw new Error(`openapi.yaml has no schema ${name}`);
      validate = ajv.getSchema(`${ROOT}#/components/schemas/${name}`);
      if (!validate) throw new Error(`could not compile ${name}`);
      validators.set(name, validate);
    }
    return validate;
  }

  /** The component schema an answer is held to, by its operation and status. */
  function schemaOf(method: string, path: string, status: number): string | undefined {
    const operation = operations.find((o) => o.method === method && o.pattern.test(path));
    let response = operation?.responses[String(status)];
    if (isObject(response) && typeof response['$ref'] === 'string') {
      response = (components['responses'] as JsonObject)[response['$ref'].split('/').pop() ?? ''];
    }
    const content = isObject(response) ? response['content'] : undefined;
    const json = isObject(content) ? content['application/json'] : undefined;
    const ref = isObject(json) && isObject(json['schema']) ? json['schema']['$ref'] : undefined;
    if (typeof ref === 'string') return ref.split('/').pop();
    return status >= 400 ? 'ErrorResponse' : undefined;
  }

  return { validator, schemaOf };
}

let contract: ReturnType<typeof build> | undefined;
const loaded = () => (contract ??= build());

/** What is wrong with `value` as the component schema `name`, or undefined. */
export function mismatch(name: string, value: unknown): string | undefined {
  const validate = loaded().validator(name);
  if (validate(value)) return undefined;
  return (validate.errors ?? [])
    .slice(0, 8)
    .map(
      (e) => `${e.instancePath || '/'} ${e.message ?? ''}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''}`,
    )
    .join('; ');
}

/** Fails unless `value` is valid as the component schema `name` (e.g. `RunObject`). */
export function expectMatches(name: string, value: unknown): void {
  const problem = mismatch(name, value);
  if (problem) throw new Error(`not a valid ${name}: ${problem}\n${JSON.stringify(value).slice(0, 2000)}`);
}

export interface ContractFetch {
  fetch: typeof fetch;
  /** One line per answer that broke the contract; a spec's afterEach expects none. */
  violations: string[];
  /** Answers checked so far. */
  checked: number;
}

/** A fetch that holds every `/v1` answer to the schema of its operation and status. */
export function contractFetch(base: typeof fetch = globalThis.fetch): ContractFetch {
  const { schemaOf } = loaded();
  const result: ContractFetch = {
    violations: [],
    checked: 0,
    async fetch(input, init) {
      const response = await base(input, init);
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (!url.pathname.startsWith('/v1/')) return response;
      const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toLowerCase();
      const path = url.pathname.slice('/v1'.length);
      const what = `${method.toUpperCase()} ${url.pathname} ${response.status}`;
      result.checked++;
      if (!/^application\/json\b/.test(response.headers.get('content-type') ?? '')) {
        result.violations.push(`${what}: content-type ${response.headers.get('content-type')}`);
        return response;
      }
      let body: unknown;
      try {
        body = await response.clone().json();
      } catch {
        result.violations.push(`${what}: not JSON`);
        return response;
      }
      const name = schemaOf(method, path, response.status);
      if (!name) result.violations.push(`${what}: a status openapi.yaml does not document`);
      else {
        const problem = mismatch(name, body);
        if (problem) result.violations.push(`${what}: not a valid ${name}: ${problem}`);
      }
      return response;
    },
  };
  return result;
}

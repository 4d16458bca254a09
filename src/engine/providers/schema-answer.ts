/**
 * The scripted model's answer to a JSON_SCHEMA response format: a value generated from
 * the schema (json-schema-faker) and checked against it (ajv), so that structured-output
 * code can be tested offline against what a real model would have to give.
 *
 * A schema is the caller's input, and generating or compiling one can take as long, or
 * as much memory, as the schema asks (`minItems: 1e9`, deep `$ref` chains, hostile
 * patterns). So the work runs on a worker thread of its own pool, with a heap limit, and
 * is stopped (the thread terminated) after {@link SCHEMA_ANSWER_MS} or when the run's
 * signal aborts: the event loop never waits on it. One thread: the scripted model is for
 * demos and tests, and a schema that hogs it only delays the next schema answer.
 */
import { Piscina } from 'piscina';
import { ModelError } from './provider.js';

/** How long one answer may take to generate and check. */
export const SCHEMA_ANSWER_MS = 2000;

/** Seeds tried before giving up: a generator may miss a constraint (a `not`, a tight `pattern`). */
const ATTEMPTS = 5;

/** The largest answer kept (UTF-16 code units): a schema can ask for a huge value. */
const MAX_ANSWER_CHARS = 256_000;

let pool: Piscina | undefined;

/** The generator and the validator, loaded on the thread only. */
export const libraries = () => Promise.all([import('json-schema-faker'), import('ajv')]);

/** Loads the libraries on the thread, so that the time cap counts the answer's work, not a thread's start. */
export async function warmUp(): Promise<true> {
  await libraries();
  return true;
}

function schemaPool(): Piscina {
  if (!pool) {
    // From the TypeScript sources (tsx, vitest) the thread needs a loader; the build's is plain JavaScript.
    const fromSources = import.meta.url.endsWith('.ts');
    pool = new Piscina({
      filename: new URL(fromSources ? './schema-thread.dev.mjs' : './schema-thread.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: 1,
      idleTimeout: 30_000,
      niceIncrement: 5,
      resourceLimits: { maxOldGenerationSizeMb: 128 },
    });
  }
  return pool;
}

export type SchemaAnswer = { ok: true; json: string } | { ok: false; reason: string };

/**
 * The work itself, on the thread: values generated with seeds 1, 2... until one validates.
 * Synchronous: run it only where a stuck call can be stopped.
 */
export async function generateValid(schema: Record<string, unknown>): Promise<SchemaAnswer> {
  const [{ generateSync }, { Ajv }] = await libraries();
  const ajv = new Ajv({ strict: false, allErrors: false, validateFormats: false });
  let validate;
  try {
    validate = ajv.compile(schema);
  } catch (error) {
    return { ok: false, reason: `the schema does not compile: ${(error as Error).message}` };
  }
  let last = 'no value validated';
  for (let seed = 1; seed <= ATTEMPTS; seed++) {
    let value: unknown;
    try {
      value = generateSync(schema, { seed, maxDepth: 5, maxDefaultItems: 3, optionalsProbability: 1 });
    } catch (error) {
      last = (error as Error).message;
      continue;
    }
    if (validate(value)) {
      const json = JSON.stringify(value);
      if (json.length > MAX_ANSWER_CHARS) return { ok: false, reason: `the answer would be over ${MAX_ANSWER_CHARS} characters` };
      return { ok: true, json };
    }
    last = ajv.errorsText(validate.errors);
  }
  return { ok: false, reason: last };
}

/**
 * A JSON answer that validates against `schema`, made off the event loop within
 * {@link SCHEMA_ANSWER_MS}. Rejects with the signal's reason when it aborts, and with an
 * `invalid_prompt` ModelError when no valid answer comes (in time).
 */
export async function schemaAnswer(schema: Record<string, unknown>, signal: AbortSignal): Promise<string> {
  // A thread that is starting (the first answer, or the one after a stopped one) loads
  // first, under the run's signal alone.
  await schemaPool().run(null, { name: 'warmUp', signal });
  const timeout = AbortSignal.timeout(SCHEMA_ANSWER_MS);
  let answer: SchemaAnswer;
  try {
    answer = (await schemaPool().run(schema, { name: 'answer', signal: AbortSignal.any([signal, timeout]) })) as SchemaAnswer;
  } catch (error) {
    signal.throwIfAborted();
    const why = timeout.aborted ? `took over ${SCHEMA_ANSWER_MS} ms` : (error as Error).message;
    throw new ModelError('invalid_prompt', `The scripted model could not answer to the response format's schema: ${why}.`);
  }
  if (!answer.ok)
    throw new ModelError('invalid_prompt', `The scripted model could not answer to the response format's schema: ${answer.reason}.`);
  return answer.json;
}

/** Stops the pool's thread (it also stops by itself when idle). */
export async function closeSchemaPool(): Promise<void> {
  const closing = pool;
  pool = undefined;
  await closing?.destroy();
}

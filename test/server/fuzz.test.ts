/**
 * Property-based fuzzing (fast-check) against the real server with its worker running:
 * 2,000 generated operations and variables, valid and malformed, sent with two projects'
 * keys (and bad ones) over ids of both projects; then every argument of every query and
 * mutation, generated from the schema's own types (a field added later is fuzzed without
 * a word here), with hostile values: NUL and lone surrogates in strings, ids and JSON keys,
 * deep JSON, huge lists, over HTTP, batches and the websocket. Whatever is sent: never a
 * 5xx, never an unmasked internal error, never a run in an impossible state or in another
 * project than its thread, and the server is healthy afterwards.
 */
import { asc, eq, sql } from 'drizzle-orm';
import fc from 'fast-check';
import {
  getNamedType,
  getNullableType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isScalarType,
  type GraphQLField,
  type GraphQLInputType,
} from 'graphql';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runEvents, runs } from '../../src/db/schema.js';
import { ERROR_CODES } from '../../src/domain/error-codes.js';
import { schema } from '../../src/graphql/schema.js';
import { canTransition, isTerminal, type RunStatus } from '../../src/domain/run-lifecycle.js';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
const ids = { assistants: [] as string[], threads: [] as string[], runs: [] as string[] };

const KEY_A = 'fuzz-project-a-key-0123456789';
const KEY_B = 'fuzz-project-b-key-0123456789';

beforeAll(async () => {
  t = await startTestApp({
    worker: true,
    runExpiresAfterSeconds: 2,
    apiKeys: new Map([
      [KEY_A, 'projectA'],
      [KEY_B, 'projectB'],
    ]),
    apiKey: KEY_A,
  });
  // Objects of both projects in the pools: operations reach across the boundary too.
  for (const key of [KEY_A, KEY_B]) {
    const client = { ...t, ...t.withKey(key) };
    const assistant = await createAssistant(client);
    ids.assistants.push(assistant);
    for (let i = 0; i < 3; i++) {
      const threadId = await createThread(client, i % 2 ? 'call get_weather {}' : 'sleep 300');
      ids.threads.push(threadId);
      ids.runs.push((await createRun(client, threadId, { assistantId: assistant })).id);
    }
  }
});
afterAll(async () => {
  await t?.close();
});

// Values of every shape, including the ones that are wrong for the argument.
const junk = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 70 }), fc.oneof(fc.string({ maxLength: 600 }), fc.integer()), { maxKeys: 20 }),
);
const id = (pool: () => string[]) => fc.oneof(fc.constantFrom(...pool()), fc.string({ maxLength: 30 }), junk);
const threadId = () => id(() => ids.threads);
const runId = () => id(() => ids.runs);
const assistantId = () => id(() => ids.assistants);
const message = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.constantFrom('hello', 'call get_weather {"city":"Oslo"}', 'fail rate_limit_exceeded', 'sleep 200', 'call nope {}'),
);

const operations = (): fc.Arbitrary<{ query: string; variables: unknown }> =>
  fc.oneof(
    fc.record({
      query: fc.constant('query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { id status version } }'),
      variables: fc.record({ t: threadId(), r: runId() }),
    }),
    fc.record({
      query: fc.constant(
        'query($t: ID!, $f: Int, $a: String, $l: Int, $b: String, $s: [RunStatus!]) { runs(threadId: $t, first: $f, after: $a, last: $l, before: $b, status: $s) { nodes { id } pageInfo { endCursor } } }',
      ),
      variables: fc.record(
        { t: threadId(), f: junk, a: junk, l: junk, b: junk, s: fc.oneof(junk, fc.array(fc.constantFrom('QUEUED', 'COMPLETED', 'NOPE'))) },
        { requiredKeys: ['t'] },
      ),
    }),
    fc.record({
      query: fc.constant('query($id: ID!) { thread(id: $id) { id messages(first: 5) { nodes { text } } runs { nodes { status } } } }'),
      variables: fc.record({ id: threadId() }),
    }),
    fc.record({
      query: fc.constant('mutation($i: CreateAssistantInput!) { createAssistant(input: $i) { id } }'),
      variables: fc.record({
        i: fc.oneof(
          junk,
          fc.record({ model: fc.oneof(fc.constant('scripted'), junk), name: junk, tools: junk, metadata: junk }, { requiredKeys: [] }),
        ),
      }),
    }),
    fc.record({
      query: fc.constant('mutation($i: CreateThreadInput) { createThread(input: $i) { id } }'),
      variables: fc.record({
        i: fc.oneof(
          junk,
          fc.record(
            { messages: fc.array(fc.record({ role: fc.constantFrom('USER', 'ASSISTANT', 'X'), content: message })), metadata: junk },
            { requiredKeys: [] },
          ),
        ),
      }),
    }),
    fc.record({
      query: fc.constant('mutation($t: ID!, $i: CreateMessageInput!) { createMessage(threadId: $t, input: $i) { id } }'),
      variables: fc.record({ t: threadId(), i: fc.record({ role: fc.constantFrom('USER', 'ASSISTANT'), content: message }) }),
    }),
    fc.record({
      query: fc.constant('mutation($t: ID!, $i: CreateRunInput!) { createRun(threadId: $t, input: $i) { id status } }'),
      variables: fc.record({
        t: threadId(),
        i: fc.record(
          {
            assistantId: assistantId(),
            model: fc.oneof(fc.constant('scripted'), junk),
            temperature: junk,
            topP: junk,
            maxPromptTokens: junk,
            maxCompletionTokens: fc.oneof(fc.integer({ min: 256, max: 300 }), junk),
            metadata: junk,
            toolChoice: fc.oneof(junk, fc.constant({ mode: 'REQUIRED' }), fc.constant({ function: { name: 'get_weather' } })),
            truncationStrategy: fc.oneof(junk, fc.constant({ type: 'LAST_MESSAGES', lastMessages: 1 })),
            responseFormat: fc.oneof(junk, fc.constant({ type: 'JSON_OBJECT' })),
            parallelToolCalls: junk,
            additionalMessages: fc.oneof(junk, fc.array(fc.record({ role: fc.constant('USER'), content: message }), { maxLength: 2 })),
          },
          { requiredKeys: ['assistantId'] },
        ),
      }),
    }),
    fc.record({
      query: fc.constant('mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }'),
      variables: fc.record({ t: threadId(), r: runId() }),
    }),
    fc.record({
      query: fc.constant('mutation($t: ID!, $r: ID!, $m: Metadata!) { modifyRun(threadId: $t, runId: $r, metadata: $m) { id } }'),
      variables: fc.record({ t: threadId(), r: runId(), m: junk }),
    }),
    fc.record({
      query: fc.constant(
        'mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { status } }',
      ),
      variables: fc.record({
        t: threadId(),
        r: runId(),
        o: fc.oneof(junk, fc.array(fc.record({ toolCallId: fc.oneof(fc.constant('call_x'), junk), output: junk }), { maxLength: 3 })),
      }),
    }),
    // Malformed documents: random text, and valid ones cut short.
    fc.record({
      query: fc.oneof(
        fc.string({ maxLength: 80 }),
        fc.constantFrom(
          '{ run(',
          'mutation { createRun(threadId: "x", input: {',
          '{ __typename } }',
          'subscription { runStatusChanged(runId: "x") { status } }',
        ),
      ),
      variables: fc.oneof(junk, fc.constant(undefined)),
    }),
  );

it('survives 2,000 generated operations', async () => {
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(operations(), fc.constantFrom(KEY_A, KEY_B, KEY_A, KEY_B, 'not-a-key'), async ({ query, variables }, key) => {
      const res = await fetch(t.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ query, variables }),
      });
      sent++;
      expect(res.status).toBeLessThan(500);
      const body = (await res.json()) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
      for (const error of body.errors ?? []) {
        expect(Object.keys(ERROR_CODES), JSON.stringify(error)).toContain(error.extensions?.code);
        expect(error.extensions?.code).not.toBe('INTERNAL_SERVER_ERROR');
        expect(JSON.stringify(error)).not.toMatch(/stack|\.ts:\d+|node_modules/);
      }
      // Remember new ids so later operations act on them.
      const created = body.data?.createRun?.id ?? body.data?.createThread?.id ?? body.data?.createAssistant?.id;
      if (typeof created === 'string') {
        (created.startsWith('run_') ? ids.runs : created.startsWith('thread_') ? ids.threads : ids.assistants).push(created);
      }
    }),
    { numRuns: 2000, seed: Number(process.env.FUZZ_SEED ?? 20261123) },
  );
  expect(sent).toBe(2000);

  await expectConsistentAndHealthy();
}, 120_000);

// ---- every argument of every field, from the schema ----

/**
 * The deepest JSON generated: past the JSON limits (see validation.ts). Not deeper: this
 * client's own JSON.stringify, called deep in fast-check's stack, overflows at a few
 * thousand levels; 5,000 levels and 200,000 nested arrays are input-limits.test.ts's.
 */
const DEEPEST_JSON = 1000;
/** The longest list generated: a body of up to ~1 MB. */
const LONGEST_LIST = 30_000;

const CHARACTERS_POSTGRES_REFUSES = ['\u0000', '\ud800', '\udbff', '\udc00', '\udfff', '\ud83d'];
/** Short text of every kind, with NUL and lone surrogates anywhere in it. */
const shortText = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc
    .tuple(fc.string({ maxLength: 10 }), fc.constantFrom(...CHARACTERS_POSTGRES_REFUSES), fc.string({ maxLength: 10 }))
    .map((p) => p.join('')),
  fc.array(fc.constantFrom(...CHARACTERS_POSTGRES_REFUSES, 'a', '😀', '\\', '"'), { maxLength: 12 }).map((c) => c.join('')),
);
/** Text up to ~300 KB: in short words, or one long word (the tokenizer's worst case). */
const hostileText = fc.oneof(
  { weight: 5, arbitrary: shortText },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 100_000 }).map((n) => 'ab '.repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 300_000 }).map((n) => 'x'.repeat(n)) },
);
const nest = (depth: number, leaf: unknown, asArrays: boolean): unknown => {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = asArrays ? [value] : { [`k${i % 7}`]: value };
  return value;
};
const smallJson = fc.oneof(
  fc.dictionary(shortText, fc.oneof(shortText, fc.integer(), fc.constant(null), fc.array(shortText, { maxLength: 3 })), { maxKeys: 6 }),
  fc.jsonValue({ maxDepth: 4 }).filter((v) => typeof v === 'object' && v !== null && !Array.isArray(v)),
);
/** JSON objects: hostile keys and values, deep, or with huge arrays. */
const hostileJson = fc.oneof(
  { weight: 4, arbitrary: smallJson },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: DEEPEST_JSON }), shortText, fc.boolean())
      .map(([depth, leaf, asArrays]) => ({ deep: nest(depth, leaf, asArrays) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 1_000, max: LONGEST_LIST }),
        fc.oneof(
          fc.integer(),
          shortText.filter((x) => x.length < 8),
        ),
      )
      .map(([n, item]) => ({
        type: 'object',
        enum: Array(n).fill(item),
      })),
  },
);
const hostileNumber = fc.oneof(
  fc.integer({ min: -5, max: 400 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constant(2 ** 31),
);

/** The pool of ids an ID argument draws from, by its name. */
function poolFor(name: string): () => string[] {
  if (/run/i.test(name)) return () => ids.runs;
  if (/assistant/i.test(name)) return () => ids.assistants;
  if (/thread/i.test(name)) return () => ids.threads;
  return () => [...ids.runs, ...ids.threads, ...ids.assistants];
}

/**
 * Values for an input type: mostly well-typed with hostile content, sometimes wrong or
 * huge. Inside something huge (a long list's item), everything is small: a body stays
 * within a few MB (beyond 1 MB it is refused with 413, which is fine too).
 */
function valuesOf(type: GraphQLInputType, name: string, small = false, depth = 0): fc.Arbitrary<unknown> {
  const inner = getNullableType(type);
  const wrong = fc.oneof(junk, fc.constant(undefined));
  let right: fc.Arbitrary<unknown>;
  if (isListType(inner)) {
    const few = fc.array(valuesOf(inner.ofType as GraphQLInputType, name, small, depth + 1), { maxLength: 3 });
    const many = fc
      .tuple(valuesOf(inner.ofType as GraphQLInputType, name, true, depth + 1), fc.integer({ min: 1_000, max: LONGEST_LIST }))
      .map(([one, n]) => Array(n).fill(one));
    right = small ? few : fc.oneof({ weight: 4, arbitrary: few }, { weight: 1, arbitrary: many });
  } else if (isInputObjectType(inner)) {
    if (depth > 4) return fc.constant(null);
    const fields = Object.values(inner.getFields());
    const required = fields.filter((f) => isNonNullType(f.type)).map((f) => f.name);
    right = fc.record(Object.fromEntries(fields.map((f) => [f.name, valuesOf(f.type, f.name, small, depth + 1)])), {
      requiredKeys: required,
    });
  } else if (isEnumType(inner)) {
    right = fc.constantFrom(...inner.getValues().map((v) => v.name));
  } else if (isScalarType(inner) && inner.name === 'ID') {
    right = fc.oneof(
      fc.constantFrom(...poolFor(name)()),
      fc.tuple(fc.constantFrom(...poolFor(name)()), fc.constantFrom(...CHARACTERS_POSTGRES_REFUSES)).map(([id, c]) => id + c),
      shortText,
    );
  } else if (isScalarType(inner) && inner.name === 'String') {
    const text = small ? shortText : hostileText;
    // Model names the scripted provider serves, so that runs happen too.
    right = name === 'model' ? fc.oneof(fc.constantFrom('scripted', 'scripted-x'), text) : text;
  } else if (isScalarType(inner) && (inner.name === 'JSONObject' || inner.name === 'Metadata')) {
    right = small ? smallJson : hostileJson;
  } else if (isScalarType(inner) && inner.name === 'Boolean') {
    right = fc.boolean();
  } else {
    right = hostileNumber;
  }
  return fc.oneof({ weight: 6, arbitrary: right }, { weight: 1, arbitrary: wrong });
}

/** Every query and mutation field, as an operation with one variable per argument. */
function everyField(): fc.Arbitrary<{ query: string; variables: Record<string, unknown> }> {
  const operations = [['query', schema.getQueryType()!] as const, ['mutation', schema.getMutationType()!] as const].flatMap(
    ([kind, type]) =>
      Object.values(type.getFields()).map((field: GraphQLField<unknown, unknown>) => {
        const definitions = field.args.map((a) => `$${a.name}: ${a.type}`).join(', ');
        const args = field.args.map((a) => `${a.name}: $${a.name}`).join(', ');
        const leaf = isScalarType(getNamedType(field.type)) || isEnumType(getNamedType(field.type));
        const query = `${kind}${definitions ? `(${definitions})` : ''} { ${field.name}${args ? `(${args})` : ''}${leaf ? '' : ' { __typename }'} }`;
        return fc.record({
          query: fc.constant(query),
          variables: fc.record(Object.fromEntries(field.args.map((a) => [a.name, valuesOf(a.type, a.name)]))),
        });
      }),
  );
  return fc.oneof(...operations);
}

type Answer = { status: number; errors?: { message: string; extensions?: { code?: string } }[] };

async function sendOverHttp(key: string, query: string, variables: unknown, batch: boolean): Promise<Answer[]> {
  const res = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(batch ? [{ query: '{ __typename }' }, { query, variables }] : { query, variables }),
  });
  const body = await res.json();
  return (Array.isArray(body) ? body : [body]).map((b: Omit<Answer, 'status'>) => ({ status: res.status, ...b }));
}

const sockets = new Map<string, ReturnType<TestApp['wsClient']>>();
function sendOverWebsocket(key: string, query: string, variables: Record<string, unknown>): Promise<Answer[]> {
  let client = sockets.get(key);
  if (!client) sockets.set(key, (client = t.withKey(key).wsClient()));
  return new Promise((resolve) =>
    client.subscribe(
      { query, variables },
      {
        next: (value) => resolve([{ status: 200, ...(value as Omit<Answer, 'status'>) }]),
        // Errors before execution come as a list; a closed socket (a message over the
        // websocket's size limit: 1009) as a close event.
        error: (error) => resolve(Array.isArray(error) ? [{ status: 200, errors: error }] : [{ status: 200 }]),
        complete: () => resolve([{ status: 200 }]),
      },
    ),
  );
}

it('survives hostile values in every argument of every query and mutation, on every transport', async () => {
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(
      everyField(),
      fc.constantFrom(KEY_A, KEY_B),
      fc.constantFrom('http', 'batch', 'websocket'),
      async ({ query, variables }, key, transport) => {
        const answers =
          transport === 'websocket'
            ? await sendOverWebsocket(key, query, variables)
            : await sendOverHttp(key, query, variables, transport === 'batch');
        sent++;
        for (const answer of answers) {
          expect(answer.status, query).toBeLessThan(500);
          for (const error of answer.errors ?? []) {
            expect(Object.keys(ERROR_CODES), `${query} ${JSON.stringify(error)}`).toContain(error.extensions?.code);
            expect(error.extensions?.code, `${query} ${JSON.stringify(error).slice(0, 500)}`).not.toBe('INTERNAL_SERVER_ERROR');
            expect(JSON.stringify(error)).not.toMatch(/stack|\.ts:\d+|node_modules/);
          }
        }
      },
    ),
    { numRuns: 1500, seed: Number(process.env.FUZZ_SEED ?? 20261124) },
  );
  expect(sent).toBe(1500);
  await expectConsistentAndHealthy();
}, 240_000);

/** Every run's history is legal, no run crossed a project, and the server still answers. */
async function expectConsistentAndHealthy() {
  // Every run's history is a legal path, and its row agrees with it.
  const db = t.app.database.db;
  for (const run of await db.select().from(runs)) {
    const events = await db.select().from(runEvents).where(eq(runEvents.runId, run.id)).orderBy(asc(runEvents.version));
    expect(events.map((e) => e.version)).toEqual(events.map((_, i) => i + 1));
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.fromStatus).toBe(events[i - 1]!.toStatus);
      expect(canTransition(events[i]!.fromStatus as RunStatus, events[i]!.toStatus)).toBe(true);
    }
    expect(run.version).toBe(events.length);
    expect(run.status).toBe(events.at(-1)!.toStatus);
    if (isTerminal(run.status)) expect(run.expiresAt).toBeNull();
    if (run.status === 'requires_action') expect(run.requiredAction).not.toBeNull();
  }
  // No run ever joined another project's thread or assistant.
  const [crossed] = await db
    .execute(
      sql`select count(*)::int as n from runs r join threads t on t.id = r.thread_id join assistants a on a.id = r.assistant_id
      where r.project_id <> t.project_id or r.project_id <> a.project_id`,
    )
    .then((r: any) => r.rows ?? r);
  expect(crossed.n).toBe(0);
  const [active] = await db
    .execute(
      sql`select count(*)::int as n from (select thread_id from runs where status in ('queued','in_progress','requires_action','cancelling') group by thread_id having count(*) > 1) x`,
    )
    .then((r: any) => r.rows ?? r);
  expect(active.n).toBe(0);

  // Still healthy.
  expect((await fetch(t.url.replace('/graphql', '/health'))).status).toBe(200);
  expect(await t.ok('{ __typename }')).toEqual({ __typename: 'Query' });
}

/**
 * Property-based fuzzing (fast-check) against the real server with its worker running:
 * 2,000 generated operations and variables, valid and malformed, sent with two projects'
 * keys (and bad ones) over ids of both projects. Whatever is sent: never a 5xx, never an
 * unmasked internal error, never a run in an impossible state or in another project than
 * its thread, and the server is healthy afterwards.
 */
import { asc, eq, sql } from 'drizzle-orm';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runEvents, runs } from '../../src/db/schema.js';
import { canTransition, isTerminal, type RunStatus } from '../../src/domain/run-status.js';
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
    fc.record({ query: fc.constant('query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { id status version } }'), variables: fc.record({ t: threadId(), r: runId() }) }),
    fc.record({
      query: fc.constant('query($t: ID!, $f: Int, $a: String, $l: Int, $b: String, $s: [RunStatus!]) { runs(threadId: $t, first: $f, after: $a, last: $l, before: $b, status: $s) { nodes { id } pageInfo { endCursor } } }'),
      variables: fc.record({ t: threadId(), f: junk, a: junk, l: junk, b: junk, s: fc.oneof(junk, fc.array(fc.constantFrom('QUEUED', 'COMPLETED', 'NOPE'))) }, { requiredKeys: ['t'] }),
    }),
    fc.record({ query: fc.constant('query($id: ID!) { thread(id: $id) { id messages(first: 5) { nodes { text } } runs { nodes { status } } } }'), variables: fc.record({ id: threadId() }) }),
    fc.record({ query: fc.constant('mutation($i: CreateAssistantInput!) { createAssistant(input: $i) { id } }'), variables: fc.record({ i: fc.oneof(junk, fc.record({ model: fc.oneof(fc.constant('scripted'), junk), name: junk, tools: junk, metadata: junk }, { requiredKeys: [] })) }) }),
    fc.record({ query: fc.constant('mutation($i: CreateThreadInput) { createThread(input: $i) { id } }'), variables: fc.record({ i: fc.oneof(junk, fc.record({ messages: fc.array(fc.record({ role: fc.constantFrom('USER', 'ASSISTANT', 'X'), content: message })), metadata: junk }, { requiredKeys: [] })) }) }),
    fc.record({ query: fc.constant('mutation($t: ID!, $i: CreateMessageInput!) { createMessage(threadId: $t, input: $i) { id } }'), variables: fc.record({ t: threadId(), i: fc.record({ role: fc.constantFrom('USER', 'ASSISTANT'), content: message }) }) }),
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
    fc.record({ query: fc.constant('mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }'), variables: fc.record({ t: threadId(), r: runId() }) }),
    fc.record({ query: fc.constant('mutation($t: ID!, $r: ID!, $m: JSONObject!) { modifyRun(threadId: $t, runId: $r, metadata: $m) { id } }'), variables: fc.record({ t: threadId(), r: runId(), m: junk }) }),
    fc.record({
      query: fc.constant('mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { status } }'),
      variables: fc.record({ t: threadId(), r: runId(), o: fc.oneof(junk, fc.array(fc.record({ toolCallId: fc.oneof(fc.constant('call_x'), junk), output: junk }), { maxLength: 3 })) }),
    }),
    // Malformed documents: random text, and valid ones cut short.
    fc.record({ query: fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom('{ run(', 'mutation { createRun(threadId: "x", input: {', '{ __typename } }', 'subscription { runStatusChanged(runId: "x") { status } }')), variables: fc.oneof(junk, fc.constant(undefined)) }),
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
        expect(error.extensions?.code, JSON.stringify(error)).toBeTypeOf('string');
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
    .execute(sql`select count(*)::int as n from runs r join threads t on t.id = r.thread_id join assistants a on a.id = r.assistant_id
      where r.project_id <> t.project_id or r.project_id <> a.project_id`)
    .then((r: any) => r.rows ?? r);
  expect(crossed.n).toBe(0);
  const [active] = await db
    .execute(sql`select count(*)::int as n from (select thread_id from runs where status in ('queued','in_progress','requires_action','cancelling') group by thread_id having count(*) > 1) x`)
    .then((r: any) => r.rows ?? r);
  expect(active.n).toBe(0);

  // Still healthy.
  expect((await fetch(t.url.replace('/graphql', '/health'))).status).toBe(200);
  expect(await t.ok('{ __typename }')).toEqual({ __typename: 'Query' });
}, 120_000);

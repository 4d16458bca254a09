/**
 * Input PostgreSQL cannot take, sent as a client can send it, on every transport: each
 * gets a clear code, never INTERNAL_SERVER_ERROR, and nothing half-written.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIVE_STATUS_LIST } from '../../src/db/schema.js';
import { RUN_STATUSES } from '../../src/domain/run-lifecycle.js';
import { createAssistant, createRun, createThread, WEATHER_TOOL } from '../support/fixtures.js';
import { startTestApp, type GraphQLResponse, type TestApp } from '../support/test-app.js';

let t: TestApp;
let assistantId: string;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
  assistantId = await createAssistant(t);
});
afterAll(async () => {
  await t?.close();
});

type Send = (query: string, variables: Record<string, unknown>) => Promise<GraphQLResponse>;

const overHttp: Send = (query, variables) => t.gql(query, variables);
/** A batch of two: yoga's path (the fast path serves single operations only). */
const inBatch: Send = async (query, variables) => {
  const res = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([{ query: '{ __typename }' }, { query, variables }]),
  });
  const answers = (await res.json()) as GraphQLResponse[];
  expect(answers[0]).toEqual({ data: { __typename: 'Query' } });
  return answers[1]!;
};
const overWebsocket: Send = (query, variables) => {
  const client = t.wsClient();
  return new Promise((resolve) =>
    client.subscribe(
      { query, variables },
      { next: (value) => resolve(value as GraphQLResponse), error: (e) => resolve({ errors: e as never }), complete: () => {} },
    ),
  );
};
const TRANSPORTS = { HTTP: overHttp, 'a batched HTTP request': inBatch, 'the websocket': overWebsocket };

const NUL = '\u0000';
const CREATE_ASSISTANT = 'mutation($i: CreateAssistantInput!) { createAssistant(input: $i) { id } }';
const CREATE_THREAD = 'mutation($i: CreateThreadInput) { createThread(input: $i) { id } }';
const CREATE_MESSAGE = 'mutation($t: ID!, $i: CreateMessageInput!) { createMessage(threadId: $t, input: $i) { id } }';
const CREATE_RUN = 'mutation($t: ID!, $i: CreateRunInput!) { createRun(threadId: $t, input: $i) { id } }';
const MODIFY_RUN = 'mutation($t: ID!, $r: ID!, $m: Metadata!) { modifyRun(threadId: $t, runId: $r, metadata: $m) { id } }';
const SUBMIT = 'mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { id } }';

const tool = (fn: Record<string, unknown>) => ({ type: 'FUNCTION', function: { name: 'get_weather', ...fn } });

/** Each stored string, with a NUL in it, and the field the error must name. */
function nulCases(ids: {
  threadId: string;
  idleThreadId: string;
  runId: string;
  waiting: { threadId: string; runId: string; callId: string };
}) {
  const { threadId, idleThreadId, runId, waiting } = ids;
  const assistant = (i: Record<string, unknown>) => [CREATE_ASSISTANT, { i: { model: 'scripted', ...i } }] as const;
  const run = (i: Record<string, unknown>) => [CREATE_RUN, { t: idleThreadId, i: { assistantId, ...i } }] as const;
  return [
    ['input.model', ...assistant({ model: `scripted${NUL}` })],
    ['input.name', ...assistant({ name: `a${NUL}b` })],
    ['input.description', ...assistant({ description: NUL })],
    ['input.instructions', ...assistant({ instructions: `be${NUL}brief` })],
    ['input.metadata', ...assistant({ metadata: { k: `v${NUL}` } })],
    ['input.metadata', ...assistant({ metadata: { [`k${NUL}`]: 'v' } })],
    ['input.tools.0.function.description', ...assistant({ tools: [tool({ description: `d${NUL}` })] })],
    [
      'input.tools.0.function.parameters',
      ...assistant({ tools: [tool({ parameters: { type: 'object', properties: { [`c${NUL}`]: {} } } })] }),
    ],
    ['input.tools.1.function.parameters', ...assistant({ tools: [WEATHER_TOOL, tool({ parameters: { enum: ['a', `b${NUL}`] } })] })],
    ['input.metadata', CREATE_THREAD, { i: { metadata: { k: NUL } } }],
    [
      'input.messages.1.content',
      CREATE_THREAD,
      {
        i: {
          messages: [
            { role: 'USER', content: 'ok' },
            { role: 'USER', content: `x${NUL}` },
          ],
        },
      },
    ],
    ['input.messages.0.metadata', CREATE_THREAD, { i: { messages: [{ role: 'USER', content: 'ok', metadata: { [NUL]: 'v' } }] } }],
    ['input.content', CREATE_MESSAGE, { t: idleThreadId, i: { role: 'USER', content: `hello${NUL}` } }],
    ['input.metadata', CREATE_MESSAGE, { t: idleThreadId, i: { role: 'USER', content: 'hi', metadata: { k: NUL } } }],
    ['input.model', ...run({ model: `scripted${NUL}` })],
    ['input.instructions', ...run({ instructions: NUL })],
    ['input.additionalInstructions', ...run({ additionalInstructions: `more${NUL}` })],
    ['input.additionalMessages.0.content', ...run({ additionalMessages: [{ role: 'USER', content: NUL }] })],
    ['input.additionalMessages.0.metadata', ...run({ additionalMessages: [{ role: 'USER', content: 'x', metadata: { k: NUL } }] })],
    ['input.metadata', ...run({ metadata: { k: NUL } })],
    ['input.tools.0.function.parameters', ...run({ tools: [tool({ parameters: { d: [[[`x${NUL}`]]] } })] })],
    [
      'input.responseFormat.jsonSchema.description',
      ...run({ responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { name: 'n', description: NUL } } }),
    ],
    [
      'input.responseFormat.jsonSchema.schema',
      ...run({ responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { name: 'n', schema: { [NUL]: 1 } } } }),
    ],
    ['metadata', MODIFY_RUN, { t: threadId, r: runId, m: { note: `x${NUL}y` } }],
    ['toolOutputs.0.output', SUBMIT, { t: waiting.threadId, r: waiting.runId, o: [{ toolCallId: waiting.callId, output: `22°C${NUL}` }] }],
  ] as const;
}

/** A run waiting on tool outputs, through the scripted model's `call` directive. */
async function waitingRun(): Promise<{ threadId: string; runId: string; callId: string }> {
  const threadId = await createThread(t, 'call get_weather {"city":"Oslo"}');
  const runId = (await createRun(t, threadId, { assistantId })).id as string;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const { run } = await t.ok(
      `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status requiredAction { submitToolOutputs { toolCalls { id } } } } }`,
      {
        t: threadId,
        r: runId,
      },
    );
    if (run.status === 'REQUIRES_ACTION') return { threadId, runId, callId: run.requiredAction.submitToolOutputs.toolCalls[0].id };
  }
  throw new Error('the run never asked for tool outputs');
}

describe('a NUL (U+0000) in a stored string', () => {
  for (const [transport, send] of Object.entries(TRANSPORTS)) {
    it(`is refused with BAD_USER_INPUT naming the field, over ${transport}, and nothing is stored`, async () => {
      const threadId = await createThread(t);
      const runId = (await createRun(t, threadId, { assistantId })).id as string;
      const waiting = await waitingRun();
      const ids = { threadId, idleThreadId: await createThread(t), runId, waiting };
      // Counted once every other run has finished writing (its answer is a message).
      await othersSettled(waiting.runId);
      const counts = await rowCounts();
      for (const [field, query, variables] of nulCases(ids)) {
        const answer = await send(query, variables as Record<string, unknown>);
        const error = answer.errors?.[0];
        expect(error?.extensions, `${field}: ${JSON.stringify(answer)}`).toMatchObject({ code: 'BAD_USER_INPUT', fields: [field] });
        expect(error?.message).toContain(`${field}: must not contain NUL`);
      }
      expect(await rowCounts()).toEqual(counts);
      // The run still waits for its outputs, and takes good ones.
      const submitted = await send(SUBMIT, { t: waiting.threadId, r: waiting.runId, o: [{ toolCallId: waiting.callId, output: '22°C' }] });
      expect(submitted.errors).toBeUndefined();
    }, 30_000);
  }
});

/** Waits until no run but `except` is active: a busy machine finishes runs late. */
async function othersSettled(except: string) {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const [row] = await t.app.database.db
      .execute(sql`select count(*)::int as busy from runs where id <> ${except} and status in (${sql.raw(ACTIVE_STATUS_LIST)})`)
      .then((r: any) => r.rows ?? r);
    if (row.busy === 0) return;
  }
  throw new Error('runs still working after 20 s');
}

async function rowCounts() {
  const [row] = await t.app.database.db
    .execute(
      sql`select (select count(*) from assistants)::int as a, (select count(*) from threads)::int as t,
      (select count(*) from messages)::int as m, (select count(*) from runs)::int as r`,
    )
    .then((r: any) => r.rows ?? r);
  return row;
}

describe('a NUL in an id', () => {
  it('finds nothing, as any unknown id: null where a lookup may find nothing, NOT_FOUND where it must', async () => {
    const threadId = await createThread(t);
    const runId = (await createRun(t, threadId, { assistantId })).id as string;
    for (const send of Object.values(TRANSPORTS)) {
      const lookups = await send(
        `query($t: ID!, $r: ID!, $a: ID!) { thread(id: $t) { id } run(threadId: $t, runId: $r) { id } assistant(id: $a) { id }
          runStep(threadId: $t, runId: $r, stepId: $r) { id } }`,
        { t: `${threadId}${NUL}`, r: `${runId}${NUL}`, a: `${assistantId}${NUL}` },
      );
      expect(lookups).toEqual({ data: { thread: null, run: null, assistant: null, runStep: null } });
      for (const [query, variables] of [
        ['query($t: ID!) { runs(threadId: $t) { nodes { id } } }', { t: NUL }],
        [CREATE_MESSAGE, { t: `${threadId}${NUL}`, i: { role: 'USER', content: 'hi' } }],
        [CREATE_RUN, { t: `${NUL}${threadId}`, i: { assistantId } }],
        [CREATE_RUN, { t: threadId, i: { assistantId: `${assistantId}${NUL}` } }],
        ['mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { id } }', { t: threadId, r: `run_${NUL}` }],
        [MODIFY_RUN, { t: threadId, r: `${runId}${NUL}`, m: {} }],
      ] as const) {
        const answer = await send(query, variables);
        expect(answer.errors?.[0]?.extensions?.code, `${query} ${JSON.stringify(answer)}`).toBe('NOT_FOUND');
      }
    }
    const subscription = await overWebsocket('subscription($r: ID!) { runStatusChanged(runId: $r) { status } }', { r: `${runId}${NUL}` });
    expect(JSON.stringify(subscription.errors)).toContain('NOT_FOUND');
  });
});

describe('a lone UTF-16 surrogate in text or an id', () => {
  it('is stored (and looked up) as U+FFFD, whatever character precedes it', async () => {
    const threadId = await createThread(t);
    for (const text of ['é\udfff', '中\udc00', '\ufffd\udfff', 'a\ud800', '\udfff\udfff']) {
      const expected = text.replace(/[\ud800-\udfff]/g, '\ufffd');
      const message = await t.ok('mutation($t: ID!, $i: CreateMessageInput!) { createMessage(threadId: $t, input: $i) { text } }', {
        t: threadId,
        i: { role: 'USER', content: text },
      });
      expect(message.createMessage.text).toBe(expected);
      const assistant = await t.ok('mutation($i: CreateAssistantInput!) { createAssistant(input: $i) { name } }', {
        i: { model: 'scripted', name: text },
      });
      expect(assistant.createAssistant.name).toBe(expected);
      expect(await t.ok('query($t: ID!) { thread(id: $t) { id } }', { t: `${threadId}${text}` })).toEqual({ thread: null });
    }
  });
});

describe('a lone UTF-16 surrogate in a metadata key', () => {
  it('is stored as U+FFFD, as it is in a value', async () => {
    const thread = await t.ok('mutation($i: CreateThreadInput) { createThread(input: $i) { id metadata } }', {
      i: {
        metadata: { 'k\ud800': 'v', '\udc00': 'w', 'pair 😀': 'x' },
        messages: [{ role: 'USER', content: 'hi', metadata: { 'm\udbff': 'v' } }],
      },
    });
    expect(thread.createThread.metadata).toEqual({ 'k\ufffd': 'v', '\ufffd': 'w', 'pair 😀': 'x' });
    const threadId = thread.createThread.id;
    const messages = await t.ok('query($t: ID!) { thread(id: $t) { messages { nodes { metadata } } } }', { t: threadId });
    expect(messages.thread.messages.nodes).toEqual([{ metadata: { 'm\ufffd': 'v' } }]);
    const run = await createRun(t, threadId, {
      assistantId,
      metadata: { '\ud83d': 'half' },
      tools: [tool({ parameters: { 'p\udfff': {} } })],
    });
    expect(run.metadata).toEqual({ '\ufffd': 'half' });
    const modified = await t.ok(
      'mutation($t: ID!, $r: ID!, $m: Metadata!) { modifyRun(threadId: $t, runId: $r, metadata: $m) { metadata } }',
      {
        t: threadId,
        r: run.id,
        m: { 'a\udc00b': 'c' },
      },
    );
    expect(modified.modifyRun.metadata).toEqual({ 'a\ufffdb': 'c' });
    const assistant = await t.ok(
      'mutation($i: CreateAssistantInput!) { createAssistant(input: $i) { metadata tools { function { parameters } } } }',
      {
        i: { model: 'scripted', metadata: { '\ud800': 'v' }, tools: [tool({ parameters: { '\ud800\ud800': 1 } })] },
      },
    );
    expect(assistant.createAssistant).toEqual({
      metadata: { '\ufffd': 'v' },
      tools: [{ function: { parameters: { '\ufffd\ufffd': 1 } } }],
    });
  });
});

describe('a list of 12,000 messages for a new thread (more parameters than one statement takes)', () => {
  it('is stored whole, in order', async () => {
    const many = Array.from({ length: 12_000 }, (_, i) => ({ role: 'USER', content: String(i) }));
    const { createThread: thread } = await t.ok(CREATE_THREAD, { i: { messages: many } });
    const [row] = await t.app.database.db
      .execute(
        sql`select count(*)::int as n, min(content::int) as first, (array_agg(content order by id desc))[1] as last from messages where thread_id = ${thread.id}`,
      )
      .then((r: any) => r.rows ?? r);
    expect(row).toEqual({ n: 12_000, first: 0, last: '11999' });
  });
});

describe('a status filter', () => {
  it("of 70,000 values (beyond PostgreSQL's 65,535 parameters) asks for each status once", async () => {
    const threadId = await createThread(t);
    const run = await createRun(t, threadId, { assistantId });
    const statuses = Array.from({ length: 70_000 }, (_, i) => RUN_STATUSES[i % RUN_STATUSES.length]!.toUpperCase());
    const query = `query($t: ID!, $s: [RunStatus!]) { runs(threadId: $t, status: $s) { nodes { id } } thread(id: $t) { runs(status: $s) { nodes { id } } } }`;
    const data = await t.ok(query, { t: threadId, s: statuses });
    expect(data.runs.nodes).toEqual([{ id: run.id }]);
    expect(data.thread.runs.nodes).toEqual([{ id: run.id }]);
    const onlyExpired = await t.ok(query, { t: threadId, s: Array.from({ length: 70_000 }, () => 'EXPIRED') });
    expect(onlyExpired.runs.nodes).toEqual([]);
  });
});

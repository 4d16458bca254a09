/**
 * createThreadAndRun: a new thread, its messages and a run on it in one call and one
 * transaction. It validates as createThread and createRun do, leaves nothing behind when
 * the run cannot be created, is safe to retry with a key, and announces the run's QUEUED
 * event as createRun does: the worker here polls once a minute, so a run that completes
 * in seconds was woken by that announcement.
 */
import { Writable } from 'node:stream';
import { count, isNull, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages, runs, threads } from '../../src/db/schema.js';
import { isStatusEvent } from '../../src/domain/run-events.js';
import type { RunStatusEvent } from '../../src/domain/run.js';
import { createLogger } from '../../src/log.js';
import { createAssistant, createThread, RUN_FIELDS, WEATHER_TOOL } from '../support/fixtures.js';
import { collect, startTestApp, type GraphQLResponse, type TestApp } from '../support/test-app.js';

/** The server's log lines; those no spec expects go on to stdout as usual. */
const logged: { msg: string; err?: { message: string } }[] = [];
const EXPECTED = /no runs today/;
const log = new Writable({
  write(chunk, _encoding, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) {
      logged.push(JSON.parse(line));
      if (!EXPECTED.test(line)) process.stdout.write(`${line}\n`);
    }
    done();
  },
});

let t: TestApp;
let assistantId: string;
beforeAll(async () => {
  t = await startTestApp({ worker: true, workerPollMs: 60_000, logger: createLogger({ level: 'warn', destination: log }) });
  assistantId = await createAssistant(t);
});
afterAll(async () => {
  await t?.close();
});

const CREATE = `mutation($input: CreateThreadAndRunInput!, $k: String) {
  createThreadAndRun(input: $input, idempotencyKey: $k) { ${RUN_FIELDS} } }`;
const CREATE_RUN = `mutation($threadId: ID!, $input: CreateRunInput!) { createRun(threadId: $threadId, input: $input) { ${RUN_FIELDS} } }`;
const CREATE_THREAD = 'mutation($input: CreateThreadInput) { createThread(input: $input) { id } }';
const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'INCOMPLETE', 'EXPIRED'];

let keys = 0;
const newKey = () => `thread-and-run-${Date.now()}-${++keys}`;

/** The rows clients write: threads, runs, and messages no run wrote (the worker adds answers meanwhile). */
async function clientRows() {
  const db = t.app.database.db;
  const [[th], [ru], [me]] = await Promise.all([
    db.select({ n: count() }).from(threads),
    db.select({ n: count() }).from(runs),
    db.select({ n: count() }).from(messages).where(isNull(messages.runId)),
  ]);
  return { threads: th!.n, runs: ru!.n, messages: me!.n };
}

/** The run once it is terminal (the worker executes it). */
async function finished(threadId: string, runId: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { run } = await t.ok(`query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { ${RUN_FIELDS} } }`, { t: threadId, r: runId });
    if (TERMINAL.includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} still ${run.status}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function threadOf(threadId: string) {
  const { thread } = await t.ok(
    `query($t: ID!) { thread(id: $t) { id metadata messages(order: ASC) { nodes { role text metadata runId } } } }`,
    { t: threadId },
  );
  return thread;
}

/** What a client can compare of two answers refused alike: the message and the extensions. */
function refusal(res: GraphQLResponse) {
  expect(res.errors, JSON.stringify(res)).toHaveLength(1);
  expect(res.data ?? null).toBeNull();
  const { message, extensions } = res.errors![0]!;
  return { message, extensions };
}

describe('createThreadAndRun', () => {
  it('creates the thread with its metadata and messages, in order, and a queued run on it that the scripted model completes', async () => {
    const started = Date.now();
    const { createThreadAndRun: run } = await t.ok(CREATE, {
      input: {
        assistantId,
        metadata: { purpose: 'test' },
        thread: {
          metadata: { topic: 'greetings' },
          messages: [
            { role: 'USER', content: 'Hi', metadata: { n: '1' } },
            { role: 'ASSISTANT', content: 'Hello! How can I help?' },
            { role: 'USER', content: 'Say hello back' },
          ],
        },
      },
    });
    expect(run).toMatchObject({
      object: 'thread.run',
      status: 'QUEUED',
      version: 1,
      assistantId,
      model: 'scripted',
      instructions: 'Be brief.',
      metadata: { purpose: 'test' },
    });
    expect(run.threadId).toMatch(/^thread_[0-9A-Z]{26}$/);
    const done = await finished(run.threadId, run.id);
    expect(done.status).toBe('COMPLETED');
    // The worker polls once a minute: only the QUEUED event's announcement woke it this soon.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await threadOf(run.threadId)).toEqual({
      id: run.threadId,
      metadata: { topic: 'greetings' },
      messages: {
        nodes: [
          { role: 'USER', text: 'Hi', metadata: { n: '1' }, runId: null },
          { role: 'ASSISTANT', text: 'Hello! How can I help?', metadata: {}, runId: null },
          { role: 'USER', text: 'Say hello back', metadata: {}, runId: null },
          { role: 'ASSISTANT', text: 'echo: Say hello back', metadata: {}, runId: run.id },
        ],
      },
    });
  });

  it('takes an empty thread when none is given', async () => {
    const { createThreadAndRun: run } = await t.ok(CREATE, { input: { assistantId } });
    expect(await threadOf(run.threadId)).toMatchObject({ metadata: {}, messages: { nodes: expect.any(Array) } });
    expect((await threadOf(run.threadId)).messages.nodes.filter((m: { runId: string | null }) => m.runId === null)).toEqual([]);
  });

  it('makes the run createRun makes, with the same options and the same defaults', async () => {
    const OPTIONS = `status version assistantId model instructions additionalInstructions temperature topP maxPromptTokens
      maxCompletionTokens parallelToolCalls metadata truncationStrategy { type lastMessages } toolChoice { mode function { name } }
      responseFormat { type jsonSchema { name schema strict } } tools { type function { name parameters } }`;
    const every = {
      model: 'scripted-2',
      instructions: 'Other.',
      metadata: { k: 'v' },
      temperature: 0.5,
      topP: 0.9,
      maxPromptTokens: 1000,
      maxCompletionTokens: 500,
      truncationStrategy: { type: 'LAST_MESSAGES', lastMessages: 3 },
      toolChoice: { function: { name: 'get_weather' } },
      parallelToolCalls: false,
      responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { name: 'answer', schema: { type: 'object' }, strict: true } },
      tools: [WEATHER_TOOL],
    };
    for (const options of [{}, every]) {
      const threadId = await createThread(t);
      const alone = await t.ok(`mutation($t: ID!, $i: CreateRunInput!) { createRun(threadId: $t, input: $i) { ${OPTIONS} } }`, {
        t: threadId,
        i: { assistantId, ...options },
      });
      const together = await t.ok(`mutation($i: CreateThreadAndRunInput!) { createThreadAndRun(input: $i) { ${OPTIONS} } }`, {
        i: { assistantId, thread: { messages: [{ role: 'USER', content: 'Hello' }] }, ...options },
      });
      expect(together.createThreadAndRun).toEqual(alone.createRun);
    }
    const given = await t.ok(`mutation($i: CreateThreadAndRunInput!) { createThreadAndRun(input: $i) { ${OPTIONS} } }`, {
      i: { assistantId, ...every },
    });
    expect(given.createThreadAndRun).toMatchObject({
      model: 'scripted-2',
      temperature: 0.5,
      maxPromptTokens: 1000,
      parallelToolCalls: false,
    });
  });
});

describe('refusals: the codes and messages of createRun and createThread, and nothing written', () => {
  const runPart: [string, Record<string, unknown>][] = [
    ['an unknown assistant', { assistantId: 'asst_nope' }],
    ['a model no provider serves', { model: 'no-such-model' }],
    ['a forced function that is not one of the tools', { toolChoice: { function: { name: 'nope' } } }],
    ['a toolChoice with both a mode and a function', { toolChoice: { mode: 'AUTO', function: { name: 'get_weather' } } }],
    ['temperature above 2', { temperature: 2.5 }],
    ['topP above 1', { topP: 1.5 }],
    ['maxPromptTokens under 256', { maxPromptTokens: 255 }],
    ['maxCompletionTokens under 256', { maxCompletionTokens: 10 }],
    ['instructions over 256,000 characters', { instructions: 'x'.repeat(256_001) }],
    ['17 metadata keys', { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }],
    ['a metadata value of 513 characters', { metadata: { k: 'v'.repeat(513) } }],
    ['21 tools', { tools: Array.from({ length: 21 }, (_, i) => ({ type: 'FUNCTION', function: { name: `f${i}` } })) }],
    ['a bad function name', { tools: [{ type: 'FUNCTION', function: { name: 'has space' } }] }],
    ['lastMessages 0', { truncationStrategy: { type: 'LAST_MESSAGES', lastMessages: 0 } }],
    ['LAST_MESSAGES without a count', { truncationStrategy: { type: 'LAST_MESSAGES' } }],
    ['JSON_SCHEMA without a schema', { responseFormat: { type: 'JSON_SCHEMA' } }],
  ];
  for (const [what, options] of runPart) {
    it(`refuses ${what} as createRun does, leaving no thread and no message`, async () => {
      const threadId = await createThread(t);
      const before = await clientRows();
      const alone = refusal(await t.gql(CREATE_RUN, { threadId, input: { assistantId, ...options } }));
      const together = refusal(
        await t.gql(CREATE, { input: { assistantId, thread: { messages: [{ role: 'USER', content: 'Hello' }] }, ...options } }),
      );
      expect(together).toEqual(alone);
      expect(await clientRows()).toEqual(before);
    });
  }

  const threadPart: [string, Record<string, unknown>][] = [
    ['a message over 256,000 characters', { messages: [{ role: 'USER', content: 'x'.repeat(256_001) }] }],
    ['a message with a metadata value of 513 characters', { messages: [{ role: 'USER', content: 'x', metadata: { k: 'v'.repeat(513) } }] }],
    ['a message role that is neither USER nor ASSISTANT', { messages: [{ role: 'SYSTEM', content: 'x' }] }],
    ['17 thread metadata keys', { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }],
  ];
  // The same rule and words, one level down: createThread's `input.messages` is `input.thread.messages` here.
  const oneLevelDown = (text: string) => text.replaceAll('input.', 'input.thread.');
  for (const [what, thread] of threadPart) {
    it(`refuses ${what} as createThread does, leaving no thread and no message`, async () => {
      const before = await clientRows();
      const alone = refusal(await t.gql(CREATE_THREAD, { input: thread }));
      const together = refusal(await t.gql(CREATE, { input: { assistantId, thread } }));
      expect(together).toEqual(JSON.parse(oneLevelDown(JSON.stringify(alone))));
      expect(together.extensions!.code).toBe(alone.extensions!.code);
      expect(await clientRows()).toEqual(before);
    });
  }

  it('leaves no thread and no message when the database refuses the run, and a retry with the key then creates them once', async () => {
    const db = t.app.database.db;
    const input = {
      assistantId,
      thread: {
        messages: [
          { role: 'USER', content: 'one' },
          { role: 'USER', content: 'two' },
        ],
      },
    };
    const k = newKey();
    const before = await clientRows();
    await db.execute(
      sql`create function refuse_runs() returns trigger language plpgsql as $$ begin raise exception 'no runs today'; end $$`,
    );
    await db.execute(sql`create trigger refuse_runs before insert on runs for each row execute function refuse_runs()`);
    let refused: GraphQLResponse;
    try {
      refused = await t.gql(CREATE, { input, k });
    } finally {
      await db.execute(sql`drop trigger refuse_runs on runs`);
      await db.execute(sql`drop function refuse_runs()`);
    }
    // The client sees a code; the server's log has the database's reason.
    expect(refused.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(JSON.stringify(refused)).not.toMatch(EXPECTED);
    expect(logged.some((line) => EXPECTED.test(line.err?.message ?? ''))).toBe(true);
    expect(await clientRows()).toEqual(before);
    // The failed attempt kept no key: the retry creates the thread, its messages and the run, once.
    const run = (await t.ok(CREATE, { input, k })).createThreadAndRun;
    expect(await clientRows()).toEqual({ threads: before.threads + 1, runs: before.runs + 1, messages: before.messages + 2 });
    expect((await threadOf(run.threadId)).messages.nodes.slice(0, 2).map((m: { text: string }) => m.text)).toEqual(['one', 'two']);
  });
});

describe('retries with an idempotency key', () => {
  const input = () => ({ assistantId, thread: { messages: [{ role: 'USER', content: 'once' }] } });

  it('get the first run, and create no other thread, message or run', async () => {
    const k = newKey();
    const before = await clientRows();
    const first = (await t.ok(CREATE, { input: input(), k })).createThreadAndRun;
    const again = (await t.ok(CREATE, { input: input(), k })).createThreadAndRun;
    expect(again.id).toBe(first.id);
    expect(again.threadId).toBe(first.threadId);
    expect(await clientRows()).toEqual({ threads: before.threads + 1, runs: before.runs + 1, messages: before.messages + 1 });
  });

  it('ten at once with one key make one thread and one run, and every one of them gets it', async () => {
    const k = newKey();
    const before = await clientRows();
    const answers = await Promise.all(Array.from({ length: 10 }, () => t.gql(CREATE, { input: input(), k })));
    expect(answers.map((r) => r.errors)).toEqual(Array(10).fill(undefined));
    expect(new Set(answers.map((r) => r.data.createThreadAndRun.id)).size).toBe(1);
    expect(await clientRows()).toEqual({ threads: before.threads + 1, runs: before.runs + 1, messages: before.messages + 1 });
  });

  it('with other input, or a key createRun used, are BAD_USER_INPUT naming idempotencyKey, and create nothing', async () => {
    const k = newKey();
    await t.ok(CREATE, { input: input(), k });
    const used = newKey();
    await t.ok(
      'mutation($t: ID!, $a: ID!, $k: String) { createRun(threadId: $t, input: { assistantId: $a }, idempotencyKey: $k) { id } }',
      {
        t: await createThread(t),
        a: assistantId,
        k: used,
      },
    );
    const before = await clientRows();
    const other = await t.gql(CREATE, { input: { ...input(), metadata: { try: '2' } }, k });
    expect(other.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', fields: ['idempotencyKey'] });
    const ofCreateRun = await t.gql(CREATE, { input: input(), k: used });
    expect(ofCreateRun.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', fields: ['idempotencyKey'] });
    expect(ofCreateRun.errors?.[0]?.message).toMatch(/createRun/);
    expect(await clientRows()).toEqual(before);
  });
});

describe("the run's QUEUED event", () => {
  it("reaches the process's subscribers once, as createRun's does", async () => {
    const bus = t.app.services.bus;
    const heard: RunStatusEvent[] = [];
    const publish = bus.publish;
    bus.publish = (events) => {
      heard.push(...events.filter(isStatusEvent));
      publish(events);
    };
    try {
      const alone = (await t.ok(CREATE_RUN, { threadId: await createThread(t), input: { assistantId } })).createRun;
      const together = (await t.ok(CREATE, { input: { assistantId, thread: { messages: [{ role: 'USER', content: 'Hello' }] } } }))
        .createThreadAndRun;
      const queued = (runId: string) => heard.filter((e) => e.runId === runId && e.status === 'queued');
      const deadline = Date.now() + 10_000;
      while ((queued(alone.id).length === 0 || queued(together.id).length === 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const shape = ({ runId: _, threadId: __, at: ___, ...rest }: RunStatusEvent) => rest;
      expect(queued(together.id)).toEqual([
        expect.objectContaining({ runId: together.id, threadId: together.threadId, version: 1, status: 'queued', previousStatus: null }),
      ]);
      expect(queued(together.id).map(shape)).toEqual(queued(alone.id).map(shape));
    } finally {
      bus.publish = publish;
    }
  });

  it('is the first of the run’s history, which a subscriber of runStatusChanged follows to the end', async () => {
    const { createThreadAndRun: run } = await t.ok(CREATE, {
      input: { assistantId, thread: { messages: [{ role: 'USER', content: 'sleep 300' }] } },
    });
    const sub = collect(
      t.wsClient(),
      'subscription($r: ID!) { runStatusChanged(runId: $r, afterVersion: 0) { version previousStatus status } }',
      {
        r: run.id,
      },
    );
    await sub.done;
    expect(sub.events.map((e) => e.data!.runStatusChanged)).toEqual([
      { version: 1, previousStatus: null, status: 'QUEUED' },
      { version: 2, previousStatus: 'QUEUED', status: 'IN_PROGRESS' },
      { version: 3, previousStatus: 'IN_PROGRESS', status: 'COMPLETED' },
    ]);
  });
});

/** Every mutation's happy path, bad inputs and error codes, over real HTTP. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssistant, createRun, createThread, newRun, RUN_FIELDS, WEATHER_TOOL } from '../support/fixtures.js';
import { startTestApp, type GraphQLResponse, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const CREATE_RUN = `mutation($threadId: ID!, $input: CreateRunInput!) { createRun(threadId: $threadId, input: $input) { ${RUN_FIELDS} } }`;

function expectError(res: GraphQLResponse, code: string, messagePart?: string | RegExp) {
  expect(res.errors, JSON.stringify(res)).toHaveLength(1);
  const [error] = res.errors!;
  expect(error!.extensions?.code).toBe(code);
  if (messagePart) expect(error!.message).toMatch(messagePart);
  expect(JSON.stringify(res)).not.toMatch(/stack|\.ts:\d+/); // nothing internal leaks
}

describe('createRun', () => {
  it("creates a queued run from the assistant, with the Assistants API's defaults", async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const run = await createRun(t, threadId, { assistantId, metadata: { purpose: 'test' } });
    expect(run).toMatchObject({
      object: 'thread.run',
      status: 'QUEUED',
      version: 1,
      threadId,
      assistantId,
      model: 'scripted',
      instructions: 'Be brief.',
      metadata: { purpose: 'test' },
      parallelToolCalls: true,
      requiredAction: null,
      usage: null,
    });
    expect(run.id).toMatch(/^run_[0-9A-Z]{26}$/);
  });

  it('takes overrides and keeps every option', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const data = await t.ok(
      `mutation($threadId: ID!, $input: CreateRunInput!) { createRun(threadId: $threadId, input: $input) {
        model instructions additionalInstructions temperature topP maxPromptTokens maxCompletionTokens parallelToolCalls
        truncationStrategy { type lastMessages } toolChoice { mode function { name } }
        responseFormat { type jsonSchema { name schema strict } } tools { type function { name parameters } } } }`,
      {
        threadId,
        input: {
          assistantId,
          model: 'scripted-2',
          instructions: 'Other.',
          additionalInstructions: 'And more.',
          temperature: 0.5,
          topP: 0.9,
          maxPromptTokens: 1000,
          maxCompletionTokens: 500,
          truncationStrategy: { type: 'LAST_MESSAGES', lastMessages: 3 },
          toolChoice: { function: { name: 'get_weather' } },
          parallelToolCalls: false,
          responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { name: 'answer', schema: { type: 'object' }, strict: true } },
          tools: [WEATHER_TOOL],
          additionalMessages: [{ role: 'USER', content: 'extra' }],
        },
      },
    );
    expect(data.createRun).toEqual({
      model: 'scripted-2',
      instructions: 'Other.',
      additionalInstructions: 'And more.',
      temperature: 0.5,
      topP: 0.9,
      maxPromptTokens: 1000,
      maxCompletionTokens: 500,
      parallelToolCalls: false,
      truncationStrategy: { type: 'LAST_MESSAGES', lastMessages: 3 },
      toolChoice: { mode: null, function: { name: 'get_weather' } },
      responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { name: 'answer', schema: { type: 'object' }, strict: true } },
      tools: [{ type: 'FUNCTION', function: { name: 'get_weather', parameters: WEATHER_TOOL.function.parameters } }],
    });
    const thread = await t.ok(`query($id: ID!) { thread(id: $id) { messages(order: ASC) { nodes { role text } } } }`, { id: threadId });
    expect(thread.thread.messages.nodes).toEqual([
      { role: 'USER', text: 'Hello' },
      { role: 'USER', text: 'extra' },
    ]);
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    ['temperature above 2', { temperature: 2.5 }, 'input.temperature'],
    ['temperature below 0', { temperature: -0.1 }, 'input.temperature'],
    ['topP above 1', { topP: 1.5 }, 'input.topP'],
    ['maxPromptTokens under 256', { maxPromptTokens: 255 }, 'input.maxPromptTokens'],
    ['maxCompletionTokens under 256', { maxCompletionTokens: 10 }, 'input.maxCompletionTokens'],
    ['17 metadata keys', { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }, 'input.metadata'],
    ['a metadata key of 65 characters', { metadata: { ['k'.repeat(65)]: 'v' } }, 'input.metadata'],
    ['a metadata value of 513 characters', { metadata: { k: 'v'.repeat(513) } }, 'input.metadata.k'],
    ['a non-string metadata value', { metadata: { k: 1 } }, 'input.metadata.k'],
    ['21 tools', { tools: Array.from({ length: 21 }, (_, i) => ({ type: 'FUNCTION', function: { name: `f${i}` } })) }, 'input.tools'],
    ['lastMessages 0', { truncationStrategy: { type: 'LAST_MESSAGES', lastMessages: 0 } }, 'input.truncationStrategy.lastMessages'],
    ['LAST_MESSAGES without a count', { truncationStrategy: { type: 'LAST_MESSAGES' } }, 'lastMessages'],
    ['JSON_SCHEMA without a schema', { responseFormat: { type: 'JSON_SCHEMA' } }, 'jsonSchema'],
    ['a bad function name', { tools: [{ type: 'FUNCTION', function: { name: 'has space' } }] }, 'input.tools.0.function.name'],
    ['a forced function that is not a tool', { toolChoice: { function: { name: 'nope' } } }, 'toolChoice'],
  ];
  for (const [what, patch, field] of invalid) {
    it(`rejects ${what} with BAD_USER_INPUT naming ${field}`, async () => {
      const assistantId = await createAssistant(t);
      const threadId = await createThread(t);
      const res = await t.gql(CREATE_RUN, { threadId, input: { assistantId, ...patch } });
      expectError(res, 'BAD_USER_INPUT', field);
      const runs = await t.ok(`query($t: ID!) { runs(threadId: $t) { nodes { id } } }`, { t: threadId });
      expect(runs.runs.nodes).toEqual([]); // nothing was written
    });
  }

  it('rejects a toolChoice with both a mode and a function (@oneOf)', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const res = await t.gql(CREATE_RUN, {
      threadId,
      input: { assistantId, toolChoice: { mode: 'AUTO', function: { name: 'get_weather' } } },
    });
    expect(res.errors?.[0]?.message).toMatch(/exactly one key/i);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.data ?? null).toBeNull();
  });

  it('fails with NOT_FOUND for an unknown thread or assistant', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    expectError(await t.gql(CREATE_RUN, { threadId: 'thread_nope', input: { assistantId } }), 'NOT_FOUND', 'thread_nope');
    expectError(await t.gql(CREATE_RUN, { threadId, input: { assistantId: 'asst_nope' } }), 'NOT_FOUND', 'asst_nope');
  });

  it('fails with THREAD_HAS_ACTIVE_RUN while the thread has an active run, and accepts one after it ends', async () => {
    const { assistantId, threadId, runId } = await newRun(t);
    expectError(await t.gql(CREATE_RUN, { threadId, input: { assistantId } }), 'THREAD_HAS_ACTIVE_RUN', runId);
    // The busy thread is reported before what else is wrong with the input.
    expectError(await t.gql(CREATE_RUN, { threadId, input: { assistantId, model: 'no-such-model' } }), 'THREAD_HAS_ACTIVE_RUN', runId);
    await t.app.engine.transition(runId, 'cancelled');
    const next = await createRun(t, threadId, { assistantId });
    expect(next.status).toBe('QUEUED');
  });

  it('lets exactly one of 20 concurrent createRun calls on a thread through', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const results = await Promise.all(Array.from({ length: 20 }, () => t.gql(CREATE_RUN, { threadId, input: { assistantId } })));
    expect(results.filter((r) => r.data?.createRun)).toHaveLength(1);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === 'THREAD_HAS_ACTIVE_RUN')).toHaveLength(19);
  });

  it('keeps text with a lone UTF-16 surrogate (valid JSON from a client) as U+FFFD, as a text column does', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const run = await createRun(t, threadId, {
      assistantId,
      instructions: 'be \ud800brief',
      additionalMessages: [{ role: 'USER', content: 'half a pair: \udc00' }],
      metadata: { note: '\ud83d' },
    });
    expect(run.instructions).toBe('be \ufffdbrief');
    expect(run.metadata).toEqual({ note: '\ufffd' });
    const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages(order: ASC) { nodes { text } } } }`, { t: threadId });
    expect(data.thread.messages.nodes.map((m: any) => m.text)).toEqual(['Hello', 'half a pair: \ufffd']);
    // The same wherever metadata is stored.
    const modified = await t.ok(
      `mutation($t: ID!, $r: ID!, $m: Metadata!) { modifyRun(threadId: $t, runId: $r, metadata: $m) { metadata } }`,
      { t: threadId, r: run.id, m: { note: 'x\udc00y' } },
    );
    expect(modified.modifyRun.metadata).toEqual({ note: 'x\ufffdy' });
    const thread = await t.ok(`mutation($i: CreateThreadInput) { createThread(input: $i) { metadata } }`, {
      i: { metadata: { k: '\ud800' }, messages: [{ role: 'USER', content: 'hi', metadata: { k: '\ud800' } }] },
    });
    expect(thread.createThread.metadata).toEqual({ k: '\ufffd' });
  });
});

describe('createMessage', () => {
  const CREATE_MESSAGE = `mutation($threadId: ID!, $input: CreateMessageInput!) { createMessage(threadId: $threadId, input: $input) { id object role text threadId runId createdAt } }`;

  it('adds a message to an idle thread', async () => {
    const threadId = await createThread(t);
    const data = await t.ok(CREATE_MESSAGE, { threadId, input: { role: 'USER', content: 'more' } });
    expect(data.createMessage).toMatchObject({ object: 'thread.message', role: 'USER', text: 'more', threadId, runId: null });
  });

  it('fails with THREAD_HAS_ACTIVE_RUN during a run and NOT_FOUND on an unknown thread', async () => {
    const { threadId } = await newRun(t);
    expectError(await t.gql(CREATE_MESSAGE, { threadId, input: { role: 'USER', content: 'x' } }), 'THREAD_HAS_ACTIVE_RUN');
    expectError(await t.gql(CREATE_MESSAGE, { threadId: 'thread_x', input: { role: 'USER', content: 'x' } }), 'NOT_FOUND');
  });

  it('rejects bad metadata and an unknown role', async () => {
    const threadId = await createThread(t);
    expectError(
      await t.gql(CREATE_MESSAGE, { threadId, input: { role: 'USER', content: 'x', metadata: { k: 'v'.repeat(600) } } }),
      'BAD_USER_INPUT',
      'input.metadata.k',
    );
    const res = await t.gql(CREATE_MESSAGE, { threadId, input: { role: 'SYSTEM', content: 'x' } });
    expect(res.errors?.[0]?.message).toMatch(/MessageRole/);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('createAssistant and createThread', () => {
  it('round-trip through their queries', async () => {
    const assistantId = await createAssistant(t, { name: 'Helper', metadata: { team: 'a' } });
    const data = await t.ok(
      `query($id: ID!) { assistant(id: $id) { id object model name instructions metadata tools { function { name } } } }`,
      { id: assistantId },
    );
    expect(data.assistant).toMatchObject({
      id: assistantId,
      object: 'assistant',
      model: 'scripted',
      name: 'Helper',
      metadata: { team: 'a' },
    });
    expect((await t.ok(`{ assistant(id: "asst_none") { id } }`)).assistant).toBeNull();
    expect((await t.ok(`{ thread(id: "thread_none") { id } }`)).thread).toBeNull();
    const empty = await t.ok(`mutation { createThread { id metadata } }`);
    expect(empty.createThread.metadata).toEqual({});
  });

  it('rejects an empty model and too many tools', async () => {
    expectError(await t.gql(`mutation { createAssistant(input: { model: "" }) { id } }`), 'BAD_USER_INPUT', 'input.model');
    const tools = Array.from({ length: 21 }, (_, i) => ({ type: 'FUNCTION', function: { name: `f${i}` } }));
    expectError(
      await t.gql(`mutation($tools: [ToolInput!]) { createAssistant(input: { model: "m", tools: $tools }) { id } }`, { tools }),
      'BAD_USER_INPUT',
      'input.tools',
    );
  });
});

describe('modifyRun', () => {
  const MODIFY = `mutation($t: ID!, $r: ID!, $m: Metadata!) { modifyRun(threadId: $t, runId: $r, metadata: $m) { metadata version status } }`;

  it('replaces metadata in any status without a status change', async () => {
    const { threadId, runId } = await newRun(t);
    await t.app.engine.transition(runId, 'cancelled');
    const data = await t.ok(MODIFY, { t: threadId, r: runId, m: { note: 'done' } });
    expect(data.modifyRun).toEqual({ metadata: { note: 'done' }, version: 2, status: 'CANCELLED' });
  });

  it('rejects bad metadata and unknown runs', async () => {
    const { threadId, runId } = await newRun(t);
    expectError(await t.gql(MODIFY, { t: threadId, r: runId, m: { ['x'.repeat(70)]: 'v' } }), 'BAD_USER_INPUT', 'metadata');
    expectError(await t.gql(MODIFY, { t: threadId, r: 'run_nope', m: {} }), 'NOT_FOUND', 'run_nope');
    const other = await createThread(t);
    expectError(await t.gql(MODIFY, { t: other, r: runId, m: {} }), 'NOT_FOUND', runId); // run of another thread
  });
});

describe('cancelRun', () => {
  const CANCEL = `mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status cancelledAt expiresAt } }`;

  it('cancels a queued run at once', async () => {
    const { threadId, runId } = await newRun(t);
    const data = await t.ok(CANCEL, { t: threadId, r: runId });
    expect(data.cancelRun).toMatchObject({ status: 'CANCELLED', expiresAt: null });
    expect(data.cancelRun.cancelledAt).toBeTypeOf('number');
  });

  it('moves an in_progress run to CANCELLING and leaves the end to the engine', async () => {
    const { threadId, runId } = await newRun(t);
    await t.app.engine.transition(runId, 'in_progress');
    expect((await t.ok(CANCEL, { t: threadId, r: runId })).cancelRun).toMatchObject({ status: 'CANCELLING', cancelledAt: null });
    // Cancelling again is not an error: the cancel is already under way.
    expect((await t.ok(CANCEL, { t: threadId, r: runId })).cancelRun.status).toBe('CANCELLING');
  });

  it('refuses a terminal run with INVALID_RUN_STATE, naming its status as the RunStatus enum spells it', async () => {
    const { threadId, runId } = await newRun(t);
    await t.app.engine.transition(runId, 'in_progress');
    await t.app.engine.transition(runId, 'completed');
    const refused = await t.gql(CANCEL, { t: threadId, r: runId });
    expectError(refused, 'INVALID_RUN_STATE', "Cannot cancel run with status 'completed'");
    expect(refused.errors![0]!.extensions!.status).toBe('COMPLETED');
    const { run } = await t.ok(`query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status } }`, { t: threadId, r: runId });
    expect(refused.errors![0]!.extensions!.status).toBe(run.status);
  });
});

describe('submitToolOutputs', () => {
  const SUBMIT = `mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { status requiredAction { type } } }`;
  const calls = ['call_a', 'call_b'].map((id) => ({ id, type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } }));

  async function waiting() {
    const { threadId, runId } = await newRun(t);
    await t.app.engine.transition(runId, 'in_progress');
    await t.app.engine.requireAction(runId, calls);
    return { threadId, runId };
  }

  it('shows the pending calls, then accepts one output per call and queues the run', async () => {
    const { threadId, runId } = await waiting();
    const before = await t.ok(`query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { ${RUN_FIELDS} } }`, { t: threadId, r: runId });
    expect(before.run.status).toBe('REQUIRES_ACTION');
    expect(before.run.requiredAction).toEqual({
      type: 'submit_tool_outputs',
      submitToolOutputs: { toolCalls: calls },
    });
    const data = await t.ok(SUBMIT, {
      t: threadId,
      r: runId,
      o: [
        { toolCallId: 'call_b', output: '2' },
        { toolCallId: 'call_a', output: '1' },
      ],
    });
    expect(data.submitToolOutputs).toEqual({ status: 'QUEUED', requiredAction: null });
  });

  it('keeps an output with a lone UTF-16 surrogate as U+FFFD, as every text the API stores', async () => {
    const { threadId, runId } = await waiting();
    const data = await t.ok(SUBMIT, {
      t: threadId,
      r: runId,
      o: [
        { toolCallId: 'call_a', output: 'x\ud800' },
        { toolCallId: 'call_b', output: '\udfff' },
      ],
    });
    expect(data.submitToolOutputs.status).toBe('QUEUED');
    const steps = await t.app.engine.steps(runId);
    expect(JSON.stringify(steps.map((s) => s.stepDetails))).toContain('"output":"x\ufffd"');
  });

  it('names missing, unknown and repeated ids with BAD_USER_INPUT and changes nothing', async () => {
    const { threadId, runId } = await waiting();
    expectError(
      await t.gql(SUBMIT, { t: threadId, r: runId, o: [{ toolCallId: 'call_a', output: '1' }] }),
      'BAD_USER_INPUT',
      'missing outputs for tool calls call_b',
    );
    expectError(
      await t.gql(SUBMIT, {
        t: threadId,
        r: runId,
        o: [
          { toolCallId: 'call_a', output: '1' },
          { toolCallId: 'call_b', output: '2' },
          { toolCallId: 'call_z', output: '3' },
        ],
      }),
      'BAD_USER_INPUT',
      'unknown tool call ids call_z',
    );
    expectError(
      await t.gql(SUBMIT, {
        t: threadId,
        r: runId,
        o: [
          { toolCallId: 'call_a', output: '1' },
          { toolCallId: 'call_a', output: '1' },
          { toolCallId: 'call_b', output: '2' },
        ],
      }),
      'BAD_USER_INPUT',
      'repeated tool call ids call_a',
    );
    const run = await t.ok(`query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status version } }`, { t: threadId, r: runId });
    expect(run.run).toEqual({ status: 'REQUIRES_ACTION', version: 3 });
  });

  it('refuses a run that is not waiting with INVALID_RUN_STATE', async () => {
    const { threadId, runId } = await newRun(t);
    const refused = await t.gql(SUBMIT, { t: threadId, r: runId, o: [] });
    expectError(refused, 'INVALID_RUN_STATE', "status 'queued'");
    expect(refused.errors![0]!.extensions!.status).toBe('QUEUED');
    expectError(await t.gql(SUBMIT, { t: threadId, r: 'run_unknown', o: [] }), 'NOT_FOUND');
  });
});

describe('malformed requests', () => {
  it('answers a syntax error, an unknown field and a wrong variable type with GraphQL errors, not a crash', async () => {
    const parse = await t.gql('{ runs(threadId: ');
    expect(parse.errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    const unknown = await t.gql('{ nope }');
    expect(unknown.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const variable = await t.gql('query($n: Int) { runs(threadId: "x", first: $n) { nodes { id } } }', { n: 'ten' });
    expect(variable.errors?.[0]?.message).toMatch(/\$n/);
    expect(variable.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    // A subscription sent over plain HTTP that fails at subscribe time is the client's
    // error, not the server's: no 500 (fast-check found this one).
    const res = await fetch(t.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ query: 'subscription { runStatusChanged(runId: "run_missing") { status } }' }),
    });
    expect(res.status).toBeLessThan(500);
    expect(((await res.json()) as any).errors[0].extensions.code).toBe('NOT_FOUND');
    const health = await t.ok('{ __typename }');
    expect(health.__typename).toBe('Query');
  });
});

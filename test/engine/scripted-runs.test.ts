/** Runs driven by the worker and the scripted model, end to end through GraphQL. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssistant, createRun, createThread, RUN_FIELDS } from '../support/fixtures.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t?.close();
});

const WATCH = `subscription($threadId: ID!) { threadRunsChanged(threadId: $threadId) { status run { ${RUN_FIELDS} } } }`;
const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'INCOMPLETE', 'EXPIRED'];

/**
 * Watches a thread from before its run exists (the worker is faster than a client's
 * subscribe), so every status the run passes through is seen.
 */
async function watchThread(threadId: string) {
  const sub = collect(t.wsClient(), WATCH, { threadId });
  await eventually(() => t.app.services.bus.subscriberCount(`thread:${threadId}`) === 1);
  const statuses = () => sub.events.map((e) => e.data!.threadRunsChanged.status as string);
  const until = async (status: string) => {
    await eventually(() => statuses().includes(status), 10_000);
    return sub.events.find((e) => e.data!.threadRunsChanged.status === status)!.data!.threadRunsChanged.run;
  };
  const end = async () => {
    await eventually(() => statuses().some((s) => TERMINAL.includes(s)), 10_000);
    sub.stop();
    // Gone from the server too, so the next watch of this thread counts from zero.
    await eventually(() => t.app.services.bus.subscriberCount(`thread:${threadId}`) === 0);
    return sub.events.at(-1)!.data!.threadRunsChanged.run;
  };
  return { statuses, until, end };
}

/** Starts a run for `message` and resolves with every status it went through and its end. */
async function runToEnd(message: string, input: Record<string, unknown> = {}) {
  const assistantId = await createAssistant(t);
  const threadId = await createThread(t, message);
  const watch = await watchThread(threadId);
  const run = await createRun(t, threadId, { assistantId, ...input });
  const final = await watch.end();
  return { threadId, runId: run.id as string, statuses: watch.statuses(), final };
}

async function messages(threadId: string) {
  const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages(order: ASC) { nodes { role text runId assistantId } } } }`, {
    t: threadId,
  });
  return data.thread.messages.nodes;
}

describe('the scripted model', () => {
  it('completes a run with an echo, appends the message, counts tokens', async () => {
    const { threadId, runId, statuses, final } = await runToEnd('Hello there');
    expect(statuses).toEqual(['QUEUED', 'IN_PROGRESS', 'COMPLETED']);
    expect(final.completedAt).toBeTypeOf('number');
    expect(final.usage.promptTokens).toBeGreaterThan(0);
    expect(final.usage.totalTokens).toBe(final.usage.promptTokens + final.usage.completionTokens);
    const msgs = await messages(threadId);
    expect(msgs.at(-1)).toMatchObject({ role: 'ASSISTANT', text: 'echo: Hello there', runId });
  });

  it('asks for tool outputs, then answers with them', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t, 'call get_weather {"city":"Paris"}');
    const watch = await watchThread(threadId);
    const run = await createRun(t, threadId, { assistantId });
    const waiting = await watch.until('REQUIRES_ACTION');
    const [call] = waiting.requiredAction.submitToolOutputs.toolCalls;
    expect(call.function).toEqual({ name: 'get_weather', arguments: '{"city":"Paris"}' });
    await t.ok(
      `mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { id } }`,
      {
        t: threadId,
        r: run.id,
        o: [{ toolCallId: call.id, output: '22C and sunny' }],
      },
    );
    await watch.end();
    expect(watch.statuses()).toEqual(['QUEUED', 'IN_PROGRESS', 'REQUIRES_ACTION', 'QUEUED', 'IN_PROGRESS', 'COMPLETED']);
    expect((await messages(threadId)).at(-1).text).toBe('get_weather: 22C and sunny');
  });

  it('cancels an in_progress run promptly, aborting the model call', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t, 'sleep 20000');
    const watch = await watchThread(threadId);
    const run = await createRun(t, threadId, { assistantId });
    await watch.until('IN_PROGRESS');
    const started = Date.now();
    const cancel = await t.ok(`mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }`, { t: threadId, r: run.id });
    expect(cancel.cancelRun.status).toBe('CANCELLING');
    await watch.end();
    expect(Date.now() - started).toBeLessThan(5_000); // not the 20 s the model would sleep
    expect(watch.statuses()).toEqual(['QUEUED', 'IN_PROGRESS', 'CANCELLING', 'CANCELLED']);
  });

  for (const code of ['server_error', 'rate_limit_exceeded', 'invalid_prompt']) {
    it(`fails with ${code} when told to`, async () => {
      const { final } = await runToEnd(`fail ${code}`);
      expect(final.status).toBe('FAILED');
      expect(final.lastError.code).toBe(code.toUpperCase());
      expect(final.failedAt).toBeTypeOf('number');
    });
  }

  it('ends INCOMPLETE when the answer is cut at maxCompletionTokens', async () => {
    const { final, threadId } = await runToEnd('word '.repeat(400), { maxCompletionTokens: 256 });
    expect(final.status).toBe('INCOMPLETE');
    expect(final.incompleteDetails).toEqual({ reason: 'MAX_COMPLETION_TOKENS' });
    expect(final.usage.completionTokens).toBe(256);
    expect((await messages(threadId)).at(-1).role).toBe('ASSISTANT'); // the partial answer is kept
  });

  it('ends INCOMPLETE when the prompt exceeds maxPromptTokens', async () => {
    const { final } = await runToEnd('word '.repeat(400), { maxPromptTokens: 256 });
    expect(final.status).toBe('INCOMPLETE');
    expect(final.incompleteDetails).toEqual({ reason: 'MAX_PROMPT_TOKENS' });
  });

  it('refuses a model no route serves with MODEL_NOT_AVAILABLE', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const res = await t.gql(`mutation($t: ID!, $i: CreateRunInput!) { createRun(threadId: $t, input: $i) { id } }`, {
      t: threadId,
      i: { assistantId, model: 'gpt-unknown' },
    });
    expect(res.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_AVAILABLE');
    expect(res.errors?.[0]?.extensions?.model).toBe('gpt-unknown');
    expect(res.errors?.[0]?.message).toMatch(/gpt-unknown/);
  });
});

describe('tool calls with the scripted model', () => {
  const TWO_CALLS = 'call get_weather {"city":"Paris"}\ncall get_weather {"city":"Oslo"}\ncall not_a_tool {}';

  async function waitingCalls(message: string, input: Record<string, unknown> = {}) {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t, message);
    const watch = await watchThread(threadId);
    await createRun(t, threadId, { assistantId, ...input });
    const status = await Promise.race([watch.until('REQUIRES_ACTION'), watch.end()]);
    return status.requiredAction?.submitToolOutputs.toolCalls.map((c: any) => c.function) ?? status.status;
  }

  it('makes parallel calls, ignoring functions that are not tools', async () => {
    expect(await waitingCalls(TWO_CALLS)).toEqual([
      { name: 'get_weather', arguments: '{"city":"Paris"}' },
      { name: 'get_weather', arguments: '{"city":"Oslo"}' },
    ]);
  });

  it('makes only the first call when parallelToolCalls is false', async () => {
    expect(await waitingCalls(TWO_CALLS, { parallelToolCalls: false })).toEqual([{ name: 'get_weather', arguments: '{"city":"Paris"}' }]);
  });

  it('never calls with toolChoice NONE, and always with REQUIRED or a named function', async () => {
    expect(await waitingCalls(TWO_CALLS, { toolChoice: { mode: 'NONE' } })).toBe('COMPLETED');
    expect(await waitingCalls('just talk', { toolChoice: { mode: 'REQUIRED' } })).toEqual([{ name: 'get_weather', arguments: '{}' }]);
    expect(await waitingCalls('just talk', { toolChoice: { function: { name: 'get_weather' } } })).toEqual([
      { name: 'get_weather', arguments: '{}' },
    ]);
  });

  it('answers in JSON with responseFormat JSON_OBJECT', async () => {
    const { threadId } = await runToEnd('hi', { responseFormat: { type: 'JSON_OBJECT' } });
    expect(JSON.parse((await messages(threadId)).at(-1).text)).toEqual({ answer: 'echo: hi' });
  });

  it('records each step: tool calls with their outputs, then the message', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t, 'call get_weather {"city":"Rome"}');
    const watch = await watchThread(threadId);
    const run = await createRun(t, threadId, { assistantId });
    const waiting = await watch.until('REQUIRES_ACTION');
    const callId = waiting.requiredAction.submitToolOutputs.toolCalls[0].id;
    await t.ok(
      `mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { id } }`,
      {
        t: threadId,
        r: run.id,
        o: [{ toolCallId: callId, output: 'warm' }],
      },
    );
    await watch.end();
    const data = await t.ok(
      `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { steps { nodes { id type status usage { totalTokens }
        stepDetails { toolCalls { id function { name arguments output } } messageCreation { messageId } } } } } }`,
      { t: threadId, r: run.id },
    );
    const [calls, message] = data.run.steps.nodes;
    expect(calls).toMatchObject({
      type: 'TOOL_CALLS',
      status: 'COMPLETED',
      stepDetails: { toolCalls: [{ id: callId, function: { name: 'get_weather', arguments: '{"city":"Rome"}', output: 'warm' } }] },
    });
    expect(message).toMatchObject({ type: 'MESSAGE_CREATION', status: 'COMPLETED' });
    expect(calls.usage.totalTokens).toBeGreaterThan(0);
    const one = await t.ok(`query($t: ID!, $r: ID!, $s: ID!) { runStep(threadId: $t, runId: $r, stepId: $s) { id type } }`, {
      t: threadId,
      r: run.id,
      s: message.id,
    });
    expect(one.runStep).toEqual({ id: message.id, type: 'MESSAGE_CREATION' });
    const other = await t.ok(`query($t: ID!, $r: ID!, $s: ID!) { runStep(threadId: $t, runId: $r, stepId: $s) { id } }`, {
      t: threadId,
      r: 'run_other',
      s: message.id,
    });
    expect(other.runStep).toBeNull();
  });
});

describe('truncation', () => {
  async function longThenShort() {
    const threadId = await createThread(t, 'word '.repeat(300));
    await t.ok(`mutation($t: ID!) { createMessage(threadId: $t, input: { role: USER, content: "short" }) { id } }`, { t: threadId });
    return threadId;
  }

  it('lastMessages keeps only the last n thread messages in the prompt, and drops nothing more', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await longThenShort();
    // The whole thread is over the 256-token prompt limit; the last message alone is not.
    const watch = await watchThread(threadId);
    await createRun(t, threadId, { assistantId, maxPromptTokens: 256, truncationStrategy: { type: 'LAST_MESSAGES', lastMessages: 2 } });
    expect((await watch.end()).status).toBe('INCOMPLETE');
    const watch2 = await watchThread(threadId);
    await createRun(t, threadId, { assistantId, maxPromptTokens: 256, truncationStrategy: { type: 'LAST_MESSAGES', lastMessages: 1 } });
    const done = await watch2.end();
    expect(done.status).toBe('COMPLETED');
    expect(done.usage.promptTokens).toBeLessThan(256);
    expect((await messages(threadId)).at(-1).text).toBe('echo: short');
  });

  it('AUTO (the default) drops the oldest messages to fit maxPromptTokens instead of ending the run', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await longThenShort();
    const watch = await watchThread(threadId);
    await createRun(t, threadId, { assistantId, maxPromptTokens: 256 });
    const done = await watch.end();
    expect(done.status).toBe('COMPLETED');
    expect(done.usage.promptTokens).toBeLessThan(256);
    expect((await messages(threadId)).at(-1).text).toBe('echo: short');
  });
});

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
  const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages(order: ASC) { nodes { role text runId assistantId } } } }`, { t: threadId });
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
    await t.ok(`mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { id } }`, {
      t: threadId,
      r: run.id,
      o: [{ toolCallId: call.id, output: '22C and sunny' }],
    });
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

  it('refuses a model no provider serves with BAD_USER_INPUT', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const res = await t.gql(`mutation($t: ID!, $i: CreateRunInput!) { createRun(threadId: $t, input: $i) { id } }`, {
      t: threadId,
      i: { assistantId, model: 'gpt-unknown' },
    });
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.errors?.[0]?.message).toMatch(/gpt-unknown/);
  });
});

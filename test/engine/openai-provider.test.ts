/**
 * The openai provider against a local endpoint that speaks the Chat Completions wire
 * format (no real upstream is reachable here): request mapping, streamed answers and
 * tool calls, usage, and each upstream failure's run error.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAssistant, createRun, createThread, RUN_FIELDS } from '../support/fixtures.js';
import { startFakeOpenAI, textChunks, toolCallChunks, type FakeOpenAI } from '../support/fake-openai.js';
import { eventually, startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
let upstream: FakeOpenAI;
beforeAll(async () => {
  upstream = await startFakeOpenAI();
  t = await startTestApp({ worker: true, openai: { baseURL: upstream.baseURL, apiKey: 'sk-test', maxRetries: 0 } });
});
afterAll(async () => {
  await t?.close();
  await upstream?.close();
});
beforeEach(() => {
  upstream.requests.length = 0;
});

const READ = `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { ${RUN_FIELDS} } }`;

async function startRun(input: Record<string, unknown> = {}, message = 'What is the weather in Paris?') {
  const assistantId = await createAssistant(t, { model: 'gpt-test', instructions: 'You are terse.' });
  const threadId = await createThread(t, message);
  const run = await createRun(t, threadId, { assistantId, ...input });
  const read = async () => (await t.ok(READ, { t: threadId, r: run.id })).run;
  const until = async (...statuses: string[]) => {
    let last: any;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      last = await read();
      if (statuses.includes(last.status)) return last;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`run stayed ${last?.status}`);
  };
  return { threadId, runId: run.id as string, read, until };
}

async function lastMessage(threadId: string) {
  const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages(first: 1) { nodes { role text runId } } } }`, { t: threadId });
  return data.thread.messages.nodes[0];
}

describe('the openai provider', () => {
  it("streams an answer into the thread, with the endpoint's usage, and maps the request", async () => {
    upstream.reply({ kind: 'stream', chunks: textChunks('It is sunny in Paris.'), usage: { prompt_tokens: 21, completion_tokens: 7 } });
    const run = await startRun({
      additionalInstructions: 'Use metric units.',
      temperature: 0.2,
      topP: 0.5,
      maxCompletionTokens: 300,
      toolChoice: { mode: 'AUTO' },
      parallelToolCalls: false,
      responseFormat: { type: 'JSON_OBJECT' },
    });
    const done = await run.until('COMPLETED');
    expect(done.usage).toEqual({ promptTokens: 21, completionTokens: 7, totalTokens: 28 });
    expect(await lastMessage(run.threadId)).toEqual({ role: 'ASSISTANT', text: 'It is sunny in Paris.', runId: run.runId });

    expect(upstream.requests).toHaveLength(1);
    const [request] = upstream.requests;
    expect(request.path).toBe('/v1/chat/completions');
    expect(request.authorization).toBe('Bearer sk-test');
    expect(request.body).toEqual({
      model: 'gpt-test',
      stream: true,
      stream_options: { include_usage: true },
      messages: [
        { role: 'system', content: 'You are terse.\n\nUse metric units.' },
        { role: 'user', content: 'What is the weather in Paris?' },
      ],
      temperature: 0.2,
      top_p: 0.5,
      max_completion_tokens: 300,
      tools: [
        { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
      ],
      parallel_tool_calls: false,
      tool_choice: 'auto',
      response_format: { type: 'json_object' },
    });
  });

  it('turns streamed tool_calls into REQUIRES_ACTION, then sends the outputs back and sums usage', async () => {
    upstream.reply(
      {
        kind: 'stream',
        chunks: toolCallChunks([
          { id: 'call_p', name: 'get_weather', arguments: '{"city":"Paris"}' },
          { id: 'call_o', name: 'get_weather', arguments: '{"city":"Oslo"}' },
        ]),
        usage: { prompt_tokens: 30, completion_tokens: 12 },
      },
      { kind: 'stream', chunks: textChunks('Paris 22, Oslo 9.'), usage: { prompt_tokens: 50, completion_tokens: 6 } },
    );
    const run = await startRun({ toolChoice: { function: { name: 'get_weather' } } });
    const waiting = await run.until('REQUIRES_ACTION');
    expect(waiting.requiredAction.submitToolOutputs.toolCalls).toEqual([
      { id: 'call_p', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      { id: 'call_o', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
    ]);
    expect(upstream.requests[0].body.tool_choice).toEqual({ type: 'function', function: { name: 'get_weather' } });

    await t.ok(
      `mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { id } }`,
      {
        t: run.threadId,
        r: run.runId,
        o: [
          { toolCallId: 'call_p', output: '22' },
          { toolCallId: 'call_o', output: '9' },
        ],
      },
    );
    const done = await run.until('COMPLETED');
    expect(done.usage).toEqual({ promptTokens: 80, completionTokens: 18, totalTokens: 98 });
    expect(upstream.requests[1].body.messages.slice(-3)).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_p', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_o', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
        ],
      },
      { role: 'tool', content: '22', tool_call_id: 'call_p' },
      { role: 'tool', content: '9', tool_call_id: 'call_o' },
    ]);
    expect((await lastMessage(run.threadId)).text).toBe('Paris 22, Oslo 9.');
  });

  it('keeps a length-cut answer and ends INCOMPLETE (MAX_COMPLETION_TOKENS)', async () => {
    upstream.reply({
      kind: 'stream',
      chunks: textChunks('A long answer that was cu', 'length'),
      usage: { prompt_tokens: 10, completion_tokens: 256 },
    });
    const run = await startRun({ maxCompletionTokens: 256 });
    const done = await run.until('INCOMPLETE');
    expect(done.incompleteDetails).toEqual({ reason: 'MAX_COMPLETION_TOKENS' });
    expect((await lastMessage(run.threadId)).text).toBe('A long answer that was cu');
  });

  const failures: [number, string, string][] = [
    [429, 'RATE_LIMIT_EXCEEDED', 'Rate limit reached for requests'],
    [500, 'SERVER_ERROR', 'The server had an error'],
    [503, 'SERVER_ERROR', 'Overloaded'],
    [400, 'INVALID_PROMPT', "Invalid 'messages': too long"],
  ];
  for (const [status, code, message] of failures) {
    it(`fails the run with ${code} on HTTP ${status}, keeping the upstream message`, async () => {
      upstream.reply({ kind: 'error', status, message });
      const run = await startRun();
      const failed = await run.until('FAILED');
      expect(failed.lastError).toEqual({ code, message });
    });
  }

  it('fails with SERVER_ERROR when the endpoint cannot be reached', async () => {
    const closed = await startFakeOpenAI();
    await closed.close(); // nothing listens on its port any more
    const app = await startTestApp({ worker: true, openai: { baseURL: closed.baseURL, apiKey: 'k', maxRetries: 0 } });
    try {
      const assistantId = await createAssistant(app, { model: 'gpt-test' });
      const threadId = await createThread(app);
      const run = await createRun(app, threadId, { assistantId });
      let status = '';
      let lastError: any;
      const deadline = Date.now() + 10_000;
      while (status !== 'FAILED' && Date.now() < deadline) {
        ({ status, lastError } = (await app.ok(READ, { t: threadId, r: run.id })).run);
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(status).toBe('FAILED');
      expect(lastError.code).toBe('SERVER_ERROR');
      expect(lastError.message).toMatch(/connection/i);
    } finally {
      await app.close();
    }
  });

  it('cancels promptly while the answer is streaming', async () => {
    upstream.reply({ kind: 'stream', chunks: textChunks('Part of an answ'), holdMs: 20_000 });
    const run = await startRun();
    await eventually(() => upstream.requests.length === 1);
    const started = Date.now();
    const cancel = await t.ok(`mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }`, {
      t: run.threadId,
      r: run.runId,
    });
    expect(cancel.cancelRun.status).toBe('CANCELLING');
    await run.until('CANCELLED');
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await lastMessage(run.threadId)).role).toBe('USER'); // nothing half-written
  });
});

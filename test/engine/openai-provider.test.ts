/**
 * The openai provider against a local endpoint that speaks the Chat Completions wire
 * format (no real upstream is reachable here): request mapping, streamed answers and
 * tool calls, usage, and each upstream failure's run error; and, called directly, the
 * text it passes on while the answer streams.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createOpenAIProvider } from '../../src/engine/providers/openai.js';
import { ModelError, type ModelRequest } from '../../src/engine/providers/provider.js';
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

/** Waits until the thread's last message is the answer being written, with `text` so far. */
async function untilWritten(threadId: string, text: string) {
  const deadline = Date.now() + 10_000;
  let last: any;
  while (Date.now() < deadline) {
    const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages(first: 1) { nodes { role text status } } } }`, { t: threadId });
    last = data.thread.messages.nodes[0];
    if (last.role === 'ASSISTANT' && last.text === text) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the last message stayed ${JSON.stringify(last)}`);
}

/** A promise the test settles, to hold the endpoint's response open until then. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
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

  it('fails with SERVER_ERROR when the stream is cut before the answer ends, the text written so far INCOMPLETE', async () => {
    const held = gate();
    upstream.reply({ kind: 'stream', chunks: textChunks('It is sunny in', null), until: held.opened, end: 'cut' });
    const run = await startRun();
    try {
      expect(await untilWritten(run.threadId, 'It is sunny in')).toMatchObject({ status: 'IN_PROGRESS' });
    } finally {
      held.open();
    }
    const failed = await run.until('FAILED');
    expect(failed.lastError.code).toBe('SERVER_ERROR');
    expect(failed.lastError.message).toMatch(/^The model endpoint broke off the stream: terminated/);
    expect(await untilWritten(run.threadId, 'It is sunny in')).toMatchObject({ status: 'INCOMPLETE' });
  });

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

  it('cancels promptly while the answer is streaming, the text written so far INCOMPLETE', async () => {
    const held = gate();
    upstream.reply({ kind: 'stream', chunks: textChunks('Part of an answ', null), until: held.opened });
    const run = await startRun();
    await untilWritten(run.threadId, 'Part of an answ');
    const started = Date.now();
    const cancel = await t.ok(`mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }`, {
      t: run.threadId,
      r: run.runId,
    });
    expect(cancel.cancelRun.status).toBe('CANCELLING');
    await run.until('CANCELLED');
    expect(Date.now() - started).toBeLessThan(5000);
    held.open();
    expect(await untilWritten(run.threadId, 'Part of an answ')).toMatchObject({ status: 'INCOMPLETE' });
  });
});

describe('the text the openai provider passes on as the answer streams', () => {
  const provider = () => createOpenAIProvider({ baseURL: upstream.baseURL, apiKey: 'sk-test', maxRetries: 0 });
  const request: ModelRequest = {
    model: 'gpt-test',
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    tools: [],
    toolChoice: null,
    parallelToolCalls: true,
    responseFormat: null,
    temperature: null,
    topP: null,
    maxCompletionTokens: null,
  };

  /** Calls the provider, keeping the pieces it passes on and whether the call has settled. */
  function call(signal = new AbortController().signal) {
    const pieces: string[] = [];
    let settled = false;
    const result = provider().complete(request, signal, (delta) => void pieces.push(delta));
    void result.then(
      () => (settled = true),
      () => (settled = true),
    );
    return { pieces, result, settled: () => settled };
  }

  /** Whether a string holds half a surrogate pair (on its own). */
  const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

  it('passes each delta on as it arrives, in order, while the endpoint still holds the response open', async () => {
    const text = 'It is sunny in Paris, 22 degrees at noon.';
    const held = gate();
    upstream.reply({ kind: 'stream', chunks: textChunks(text), until: held.opened, usage: { prompt_tokens: 9, completion_tokens: 11 } });
    const c = call();
    try {
      await eventually(() => c.pieces.join('') === text);
      expect(c.settled()).toBe(false); // the endpoint has not ended its response
      expect(c.pieces).toEqual(text.match(/.{1,4}/gs)); // the deltas as sent, the empty first one left out
    } finally {
      held.open();
    }
    const result = await c.result;
    expect(result).toEqual({ type: 'message', text, usage: { promptTokens: 9, completionTokens: 11, totalTokens: 20 }, truncated: false });
    expect(c.pieces.join('')).toBe(text);
  });

  it('never splits a character: not a surrogate pair split between deltas, nor UTF-8 split on the wire', async () => {
    // Four code units a delta: 'abc' and the first half of 😀, then its second half...
    const text = 'abc😀d 👩‍👩‍👧‍👦 日本語 𝒳!';
    upstream.reply({ kind: 'stream', chunks: textChunks(text) });
    const split = call();
    expect(await split.result).toMatchObject({ type: 'message', text });
    expect(split.pieces.join('')).toBe(text);
    expect(split.pieces.filter((p) => !p || LONE_SURROGATE.test(p))).toEqual([]);
    expect(split.pieces[0]).toBe('abc');
    expect(split.pieces[1]).toBe('😀d ');

    upstream.reply({ kind: 'stream', chunks: textChunks(text), byteByByte: true });
    const bytes = call();
    expect(await bytes.result).toMatchObject({ type: 'message', text });
    expect(bytes.pieces.join('')).toBe(text);
    expect(bytes.pieces.filter((p) => !p || LONE_SURROGATE.test(p) || p.includes('\ufffd'))).toEqual([]);
  });

  it('passes on what the model writes before it decides to call tools; the result is the tool calls', async () => {
    const [first, ...calls] = toolCallChunks([{ id: 'call_p', name: 'get_weather', arguments: '{"city":"Paris"}' }]);
    const preamble = textChunks('Let me look that up.', null).slice(1);
    upstream.reply({ kind: 'stream', chunks: [first!, ...preamble, ...calls] });
    const c = call();
    expect(await c.result).toMatchObject({
      type: 'tool_calls',
      toolCalls: [{ id: 'call_p', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
    });
    expect(c.pieces.join('')).toBe('Let me look that up.');
  });

  const cuts: [string, { end: 'cut' | 'close' | 'done' }, RegExp][] = [
    ['the connection is cut', { end: 'cut' }, /^The model endpoint broke off the stream: terminated/],
    ['the response ends early, in good order', { end: 'close' }, /^The model endpoint ended the stream before the answer was finished/],
    ['[DONE] comes, but no finish_reason ever did', { end: 'done' }, /^The model endpoint ended the stream before the answer was finished/],
  ];
  for (const [how, reply, message] of cuts) {
    it(`rejects with server_error, after passing on the text sent, when ${how} before the answer ends`, async () => {
      const held = gate();
      upstream.reply({ kind: 'stream', chunks: textChunks('It is sunny in', null), until: held.opened, ...reply });
      const c = call();
      // The text sent is passed on, and only then does the stream end.
      await eventually(() => c.pieces.join('') === 'It is sunny in');
      held.open();
      const error = await c.result.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ModelError);
      expect(error).toMatchObject({ code: 'server_error', message: expect.stringMatching(message) });
      expect(c.pieces.join('')).toBe('It is sunny in');
    });
  }

  it("rejects with server_error and the endpoint's message when the stream carries an error", async () => {
    const chunks = [
      ...textChunks('It is sunny', null),
      { error: { message: 'The server had an error while streaming.', type: 'server_error' } },
    ];
    upstream.reply({ kind: 'stream', chunks });
    const c = call();
    await expect(c.result).rejects.toMatchObject({ code: 'server_error', message: 'The server had an error while streaming.' });
    expect(c.pieces.join('')).toBe('It is sunny');
  });

  it('rejects promptly with the reason when aborted mid-stream', async () => {
    const held = gate();
    upstream.reply({ kind: 'stream', chunks: textChunks('Part of an answ', null), until: held.opened });
    const controller = new AbortController();
    const c = call(controller.signal);
    try {
      await eventually(() => c.pieces.join('') === 'Part of an answ');
      const reason = new Error('cancelled');
      const aborted = performance.now();
      controller.abort(reason);
      await expect(c.result).rejects.toBe(reason);
      expect(performance.now() - aborted).toBeLessThan(500);
    } finally {
      held.open();
    }
  });
});

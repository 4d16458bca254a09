/**
 * `stream: true`: a run's events as server-sent events, as the Assistants API streams
 * them, read by the official `openai` client (unmodified) and raw, from a real server with
 * a worker executing runs on the scripted model. Every event is held to OpenAI's OpenAPI
 * description (`AssistantStreamEvent`).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import OpenAI from 'openai';
import type { AssistantStreamEvent } from 'openai/resources/beta/assistants';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectMatches } from '../support/openapi.js';
import { deltaText, EventReader, expectStreamEvent, namesOf, type StreamedEvent } from '../support/sse.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';

const WEATHER = {
  type: 'function' as const,
  function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
};
/** Astral characters, a ZWJ sequence among them: a delta must never split one. */
const ASTRAL = 'Say 🐙, 𝒳 and 👩‍👩‍👧‍👦 twice: 🐙𝒳👩‍👩‍👧‍👦.';

let t: TestApp;
/**
 * One whose subscribers may have 4 events waiting (slow readers are cut off early), and
 * whose bodies and answers may be large.
 */
let slow: TestApp;
let openai: OpenAI;
let assistantId: string;

beforeAll(async () => {
  [t, slow] = await Promise.all([
    startTestApp({ worker: true }),
    startTestApp({ worker: true, subscriptionBuffer: 4, maxBodyBytes: 8_000_000, maxResponseBytes: 8_000_000 }),
  ]);
  openai = new OpenAI({ apiKey: 'unused', baseURL: t.restUrl, maxRetries: 0 });
  assistantId = (await openai.beta.assistants.create({ model: 'scripted', instructions: 'Answer briefly.', tools: [WEATHER] })).id;
});
afterAll(async () => {
  await Promise.all([t?.close(), slow?.close()]);
});

async function threadSaying(content: string): Promise<string> {
  return (await openai.beta.threads.create({ messages: [{ role: 'user', content }] })).id;
}

function post(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${t.restUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
}

/** Starts a streamed run on the thread: its answer's events, to read. */
async function streamRun(threadId: string, signal?: AbortSignal): Promise<EventReader> {
  const res = await post(`/threads/${threadId}/runs`, { assistant_id: assistantId, stream: true }, signal);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  return new EventReader(res);
}

async function getJson(path: string): Promise<any> {
  const res = await fetch(`${t.restUrl}${path}`);
  expect(res.status).toBe(200);
  return res.json();
}

const only = (events: StreamedEvent[], name: string) => {
  const found = events.filter((e) => e.event === name);
  expect(found, name).toHaveLength(1);
  return found[0]!.data;
};

describe('a streamed run, read raw', () => {
  it("sends the run's events with OpenAI's names, in its order, each a valid AssistantStreamEvent, then done", async () => {
    const threadId = await threadSaying(`pace 2\n${ASTRAL}`);
    const events = await (await streamRun(threadId)).all();
    for (const e of events) expectStreamEvent(e);
    expect(namesOf(events)).toEqual([
      'thread.run.created',
      'thread.run.queued',
      'thread.run.in_progress',
      'thread.run.step.created',
      'thread.run.step.in_progress',
      'thread.message.created',
      'thread.message.in_progress',
      'thread.message.delta',
      'thread.message.completed',
      'thread.run.step.completed',
      'thread.run.completed',
      'done',
    ]);
    expect(events.at(-1)).toEqual({ event: 'done', data: '[DONE]' });

    const created = only(events, 'thread.run.created');
    expect(created).toMatchObject({
      object: 'thread.run',
      thread_id: threadId,
      assistant_id: assistantId,
      status: 'queued',
      started_at: null,
    });
    expect(only(events, 'thread.run.in_progress')).toMatchObject({ id: created.id, status: 'in_progress', started_at: expect.any(Number) });
    const step = only(events, 'thread.run.step.created');
    const message = only(events, 'thread.message.created');
    expect(step).toMatchObject({ run_id: created.id, type: 'message_creation', status: 'in_progress', completed_at: null });
    expect(step.step_details.message_creation.message_id).toBe(message.id);
    // Created as the API creates it: in progress, no content yet.
    expect(message).toMatchObject({ run_id: created.id, role: 'assistant', status: 'in_progress', content: [] });

    // The deltas, part 0 of the message's content, add up to its final text; no delta splits a character.
    const completed = only(events, 'thread.message.completed');
    for (const e of events.filter((x) => x.event === 'thread.message.delta')) {
      expect(e.data.id).toBe(message.id);
      expect(e.data.delta.content[0].text.value.isWellFormed()).toBe(true);
    }
    expect(deltaText(events)).toBe(`echo: pace 2\n${ASTRAL}`);
    expect(completed).toMatchObject({
      id: message.id,
      status: 'completed',
      content: [{ type: 'text', text: { value: deltaText(events) } }],
    });
    expect(only(events, 'thread.run.step.completed')).toMatchObject({ id: step.id, status: 'completed', completed_at: expect.any(Number) });

    // One conversion: the last run event is the run as GET answers it, the message as the list shows it.
    const run = only(events, 'thread.run.completed');
    expect(run).toMatchObject({ id: created.id, status: 'completed', usage: { total_tokens: expect.any(Number) } });
    expect(await getJson(`/threads/${threadId}/runs/${created.id}`)).toEqual(run);
    expect((await getJson(`/threads/${threadId}/messages`)).data.find((m: any) => m.id === message.id)).toEqual(completed);
    // The step and the message as they began are the stored ones as they were then, every field.
    const stored = await getJson(`/threads/${threadId}/runs/${created.id}/steps/${step.id}`);
    expect(step).toEqual({ ...stored, status: 'in_progress', completed_at: null, usage: null });
    expect(message).toEqual({ ...completed, status: 'in_progress', content: [] });
  });

  it('ends at requires_action; submitting the outputs with stream: true streams the same run on', async () => {
    const threadId = await threadSaying('call get_weather {"city": "Paris"}');
    const first = await (await streamRun(threadId)).all();
    for (const e of first) expectStreamEvent(e);
    expect(namesOf(first)).toEqual([
      'thread.run.created',
      'thread.run.queued',
      'thread.run.in_progress',
      'thread.run.step.created',
      'thread.run.step.in_progress',
      'thread.run.step.delta',
      'thread.run.requires_action',
      'done',
    ]);
    // The step is created without its calls, which come as deltas, as the API streams them.
    expect(only(first, 'thread.run.step.created')).toMatchObject({
      type: 'tool_calls',
      step_details: { type: 'tool_calls', tool_calls: [] },
    });
    const run = only(first, 'thread.run.requires_action');
    const [call] = run.required_action.submit_tool_outputs.tool_calls;
    expect(only(first, 'thread.run.step.delta').delta.step_details.tool_calls).toEqual([
      { index: 0, id: call.id, type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}', output: null } },
    ]);

    const res = await post(`/threads/${threadId}/runs/${run.id}/submit_tool_outputs`, {
      tool_outputs: [{ tool_call_id: call.id, output: '22°C ☀️' }],
      stream: true,
    });
    expect(res.status).toBe(200);
    const second = await new EventReader(res).all();
    for (const e of second) expectStreamEvent(e);
    expect(namesOf(second)).toEqual([
      'thread.run.step.completed',
      'thread.run.queued',
      'thread.run.in_progress',
      'thread.run.step.created',
      'thread.run.step.in_progress',
      'thread.message.created',
      'thread.message.in_progress',
      'thread.message.delta',
      'thread.message.completed',
      'thread.run.step.completed',
      'thread.run.completed',
      'done',
    ]);
    const toolStep = second[0]!.data;
    expect(toolStep.step_details.tool_calls[0]).toMatchObject({ id: call.id, function: { output: '22°C ☀️' } });
    // All of it about the same run.
    for (const e of second.filter((x) => x.event.startsWith('thread.run.step.') || x.event.startsWith('thread.message.'))) {
      if (!e.event.endsWith('.delta')) expect(e.data.run_id).toBe(run.id);
    }
    expect(only(second, 'thread.run.completed').id).toBe(run.id);
    expect(deltaText(second)).toBe('get_weather: 22°C ☀️');
  });

  it('ends with thread.run.failed and its last_error when the model fails', async () => {
    const events = await (await streamRun(await threadSaying('fail rate_limit_exceeded'))).all();
    for (const e of events) expectStreamEvent(e);
    expect(namesOf(events)).toEqual(['thread.run.created', 'thread.run.queued', 'thread.run.in_progress', 'thread.run.failed', 'done']);
    expect(only(events, 'thread.run.failed')).toMatchObject({
      status: 'failed',
      failed_at: expect.any(Number),
      last_error: { code: 'rate_limit_exceeded', message: expect.any(String) },
    });
  });

  it('streams a retried request (the same Idempotency-Key) the same run, from its start, each event as it was', async () => {
    const threadId = await threadSaying(ASTRAL);
    const send = () =>
      fetch(`${t.restUrl}/threads/${threadId}/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': `retry-${threadId}` },
        body: JSON.stringify({ assistant_id: assistantId, stream: true }),
      });
    const first = await new EventReader(await send()).all();
    const again = await new EventReader(await send()).all();
    for (const e of again) expectStreamEvent(e);
    expect(namesOf(again)).toEqual(namesOf(first));
    expect(again[0]!.data).toEqual(first[0]!.data);
    expect(again[0]!.data.status).toBe('queued');
    expect(deltaText(again)).toBe(deltaText(first));
  });

  it('answers a refused request as JSON with its status, as without stream', async () => {
    const missing = await post('/threads/thread_00000000000000000000000000/runs', { assistant_id: assistantId, stream: true });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toBe('application/json');
    expectMatches('ErrorResponse', await missing.json());

    const threadId = await threadSaying('sleep 60000');
    const busy = await streamRun(threadId);
    const run = (await busy.until((e) => e.event === 'thread.run.in_progress')).data;
    const refused = await post(`/threads/${threadId}/runs`, { assistant_id: assistantId, stream: true });
    expect(refused.status).toBe(400);
    expect((await refused.json()).error.code).toBe('THREAD_HAS_ACTIVE_RUN');
    const notWaiting = await post(`/threads/${threadId}/runs/${run.id}/submit_tool_outputs`, { tool_outputs: [], stream: true });
    expect(notWaiting.status).toBe(400);
    expect((await notWaiting.json()).error.code).toBe('INVALID_RUN_STATE');
    await post(`/threads/${threadId}/runs/${run.id}/cancel`, {});
    expect(namesOf(await busy.all()).slice(-3)).toEqual(['thread.run.cancelling', 'thread.run.cancelled', 'done']);
  });
});

describe('the official client', () => {
  /** Holds every event the client's stream emits to the description, as it arrives (before the client accumulates into it). */
  function checked<S extends { on(event: 'event', listener: (e: AssistantStreamEvent) => void): unknown }>(stream: S): S {
    stream.on('event', (e) => expectStreamEvent(e));
    return stream;
  }

  it('runs.stream: its textDelta events make the final text, and finalRun() is the completed run', async () => {
    const threadId = await threadSaying(`pace 2\n${ASTRAL}`);
    const stream = checked(openai.beta.threads.runs.stream(threadId, { assistant_id: assistantId }));
    let text = '';
    let created = 0;
    stream.on('textCreated', () => created++);
    stream.on('textDelta', (delta) => (text += delta.value ?? ''));
    const done = new Promise((resolve) => stream.once('messageDone', resolve));
    const run = await stream.finalRun();
    expect(run).toMatchObject({ status: 'completed', thread_id: threadId });
    expect(created).toBe(1);
    expect(text).toBe(`echo: pace 2\n${ASTRAL}`);
    expect(await done).toMatchObject({ status: 'completed', content: [{ type: 'text', text: { value: text } }] });
    const messages = await openai.beta.threads.messages.list(threadId, { order: 'desc', limit: 1 });
    expect(messages.data[0]?.content[0]).toMatchObject({ type: 'text', text: { value: text } });
  });

  it('submitToolOutputsStream goes on from a requires_action stream, with the tool calls the client saw', async () => {
    const threadId = await threadSaying('call get_weather {"city": "Paris"}');
    const stream = checked(openai.beta.threads.runs.stream(threadId, { assistant_id: assistantId }));
    const seen: string[] = [];
    stream.on('toolCallCreated', (call) => seen.push(`created ${call.id}`));
    stream.on('toolCallDone', (call) => seen.push(`done ${call.id} ${call.type === 'function' ? call.function.arguments : ''}`));
    const waiting = await stream.finalRun();
    expect(waiting.status).toBe('requires_action');
    const [call] = waiting.required_action!.submit_tool_outputs.tool_calls;
    expect(seen).toEqual([`created ${call!.id}`, `done ${call!.id} {"city": "Paris"}`]);

    const next = checked(
      openai.beta.threads.runs.submitToolOutputsStream(waiting.id, {
        thread_id: threadId,
        tool_outputs: [{ tool_call_id: call!.id, output: '22°C ☀️' }],
      }),
    );
    let text = '';
    next.on('textDelta', (delta) => (text += delta.value ?? ''));
    const run = await next.finalRun();
    expect(run).toMatchObject({ id: waiting.id, status: 'completed' });
    expect(text).toBe('get_weather: 22°C ☀️');
  });

  it('createAndRunStream: the thread first, then its run', async () => {
    const stream = checked(
      openai.beta.threads.createAndRunStream({ assistant_id: assistantId, thread: { messages: [{ role: 'user', content: ASTRAL }] } }),
    );
    const names: string[] = [];
    stream.on('event', (e) => names.push(e.event));
    let text = '';
    stream.on('textDelta', (delta) => (text += delta.value ?? ''));
    const run = await stream.finalRun();
    expect(run.status).toBe('completed');
    expect(names.slice(0, 3)).toEqual(['thread.created', 'thread.run.created', 'thread.run.queued']);
    expect(text).toBe(`echo: ${ASTRAL}`);
    expect((await openai.beta.threads.retrieve(run.thread_id)).id).toBe(run.thread_id);
  });
});

describe('one source with GraphQL', () => {
  it('a run streamed over SSE is seen by a runEvents subscription with the same deltas', async () => {
    const threadId = await threadSaying(`sleep 1000\npace 10\n${ASTRAL}`);
    const reader = await streamRun(threadId);
    const runId = (await reader.until((e) => e.event === 'thread.run.created')).data.id;
    const sub = collect(
      t.wsClient(),
      `subscription($threadId: ID!, $runId: ID!) { runEvents(threadId: $threadId, runId: $runId) {
        __typename ... on RunStatusEvent { status } ... on MessageDeltaEvent { messageId text } } }`,
      { threadId, runId },
    );
    // Subscribed while the model sleeps: every delta reaches both.
    await eventually(() => sub.events.length > 0);
    const events = await reader.all();
    await sub.done;
    const graphql = sub.events.map((r) => r.data.runEvents);
    const deltas = events.filter((e) => e.event === 'thread.message.delta');
    expect(graphql.filter((e) => e.__typename === 'MessageDeltaEvent')).toEqual(
      deltas.map((e) => ({ __typename: 'MessageDeltaEvent', messageId: e.data.id, text: e.data.delta.content[0].text.value })),
    );
    expect(deltas.length).toBeGreaterThan(1);
    expect(graphql.at(-1)).toEqual({ __typename: 'RunStatusEvent', status: 'COMPLETED' });
  });
});

describe('ending early', () => {
  it('a run cancelled mid-stream: its message incomplete with the text streamed, then thread.run.cancelled, then done', async () => {
    const threadId = await threadSaying(`pace 40\n${ASTRAL.repeat(4)}`);
    const reader = await streamRun(threadId);
    await reader.until((e) => e.event === 'thread.message.delta');
    const runId = reader.events[0]!.data.id;
    const cancel = await post(`/threads/${threadId}/runs/${runId}/cancel`, {});
    expect(cancel.status).toBe(200);
    const events = await reader.all();
    for (const e of events) expectStreamEvent(e);
    const names = namesOf(events);
    expect(names.slice(-4)).toEqual(['thread.message.incomplete', 'thread.run.step.cancelled', 'thread.run.cancelled', 'done']);
    expect(names).toContain('thread.run.cancelling');
    expect(names.indexOf('thread.run.cancelling')).toBeLessThan(names.indexOf('thread.message.incomplete'));
    const incomplete = only(events, 'thread.message.incomplete');
    expect(incomplete.content[0].text.value).toBe(deltaText(events));
    expect(only(events, 'thread.run.cancelled')).toMatchObject({ id: runId, status: 'cancelled', cancelled_at: expect.any(Number) });
  });

  it('a client that hangs up mid-stream ends its subscription; the run goes on', async () => {
    const bus = t.app.services.bus;
    const before = bus.subscriberCount();
    const threadId = await threadSaying(`pace 20\n${ASTRAL}`);
    const hangUp = new AbortController();
    const reader = await streamRun(threadId, hangUp.signal);
    await reader.until((e) => e.event === 'thread.message.delta');
    const runId = reader.events[0]!.data.id;
    expect(bus.subscriberCount(`run-content:${runId}`)).toBe(1);
    hangUp.abort();
    await eventually(() => bus.subscriberCount() === before);
    expect(bus.subscriberCount(`run-content:${runId}`)).toBe(0);
    await expect.poll(async () => (await getJson(`/threads/${threadId}/runs/${runId}`)).status, { timeout: 10_000 }).toBe('completed');
  });

  it("the official client's abort ends the subscription too", async () => {
    const bus = t.app.services.bus;
    const before = bus.subscriberCount();
    const threadId = await threadSaying(`pace 20\n${ASTRAL}`);
    const stream = openai.beta.threads.runs.stream(threadId, { assistant_id: assistantId });
    let runId = '';
    stream.on('runStepCreated', (step) => (runId = step.run_id));
    stream.on('abort', () => undefined);
    await new Promise<void>((resolve) => stream.once('textDelta', () => resolve()));
    expect(bus.subscriberCount(`run-content:${runId}`)).toBe(1);
    stream.abort();
    await eventually(() => bus.subscriberCount() === before);
  });
});

describe('a client that reads too slowly', () => {
  it('is cut off with an error event (SUBSCRIPTION_LAGGED), not done: its queue is bounded, and the subscription ends', async () => {
    const client = new OpenAI({ apiKey: 'unused', baseURL: slow.restUrl, maxRetries: 0 });
    // Long instructions make every run event large (JSON writes a control character in six
    // bytes): a reader that stops fills the socket's buffers (megabytes on loopback) at once.
    const assistant = await client.beta.assistants.create({ model: 'scripted', instructions: '\u0001'.repeat(250_000) });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: `pace 5\n${ASTRAL.repeat(10)}` }] });
    const res = await rawPost(`${slow.restUrl}/threads/${thread.id}/runs`, { assistant_id: assistant.id, stream: true });
    res.pause(); // the client stops reading
    const bus = slow.app.services.bus;
    const runs = async () => (await client.beta.threads.runs.list(thread.id)).data;
    await expect.poll(async () => (await runs()).length).toBe(1);
    const [run] = await runs();
    // The deltas overflow the queue while the writer waits for the socket: the subscription is gone.
    await eventually(() => bus.subscriberCount(`run-content:${run!.id}`) === 0, 10_000);
    const text = await readAll(res);
    const reader = new EventReader(new Response(text));
    const events = await reader.all();
    for (const e of events) expectStreamEvent(e);
    const last = events.at(-1)!;
    expect(last.event).toBe('error');
    expect(last.data).toMatchObject({ code: 'SUBSCRIPTION_LAGGED', type: 'invalid_request_error', param: null });
    expect(events.map((e) => e.event)).not.toContain('done');
    await client.beta.threads.runs.cancel(run!.id, { thread_id: thread.id });
  });
});

/** A POST whose answer the spec reads at its own pace (fetch reads ahead). */
function rawPost(url: string, body: unknown): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, resolve);
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (text += chunk));
    res.on('end', () => resolve(text));
    res.on('error', reject);
    res.resume();
  });
}

/**
 * The official `openai` client, as an app written for OpenAI's Assistants API uses it,
 * pointed at Runway's `/v1` with a worker executing runs on the scripted model. Every
 * answer it gets is held to OpenAI's OpenAPI description (test/support/openapi.ts).
 */
import OpenAI, { AuthenticationError, BadRequestError, NotFoundError } from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { contractFetch, type ContractFetch } from '../support/openapi.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const KEY = 'rest-client-key-a-0123456789';
const OTHER_KEY = 'rest-client-key-b-0123456789';
const WEATHER = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } } },
  },
};

let t: TestApp;
let contract: ContractFetch;
let openai: OpenAI;
let assistantId: string;

const client = (apiKey: string) => new OpenAI({ apiKey, baseURL: t.restUrl, fetch: contract.fetch, maxRetries: 0 });

beforeAll(async () => {
  t = await startTestApp({
    worker: true,
    apiKeys: new Map([
      [KEY, 'projectA'],
      [OTHER_KEY, 'projectB'],
    ]),
    apiKey: KEY,
  });
  contract = contractFetch();
  openai = client(KEY);
  assistantId = (
    await openai.beta.assistants.create({ model: 'scripted', name: 'Weather bot', instructions: 'Answer briefly.', tools: [WEATHER] })
  ).id;
});
afterAll(async () => {
  await t?.close();
});
let checkedBefore = 0;
afterEach(() => {
  // Every test talks to /v1, and every answer it got was held to the contract.
  expect(contract.checked).toBeGreaterThan(checkedBefore);
  checkedBefore = contract.checked;
  expect(contract.violations.splice(0)).toEqual([]);
});

/** A new thread whose one user message is `content`. */
async function threadSaying(content: string): Promise<string> {
  return (await openai.beta.threads.create({ messages: [{ role: 'user', content }] })).id;
}

describe('assistants, threads and messages', () => {
  it('creates and reads them back as the API shows them', async () => {
    const assistant = await openai.beta.assistants.create({
      model: 'scripted',
      name: 'Tutor',
      description: 'Explains things',
      instructions: 'Be brief.',
      tools: [WEATHER],
      metadata: { team: 'a' },
    });
    expect(assistant).toMatchObject({
      id: expect.stringMatching(/^asst_[0-9A-Z]{26}$/),
      object: 'assistant',
      name: 'Tutor',
      description: 'Explains things',
      model: 'scripted',
      instructions: 'Be brief.',
      tools: [WEATHER],
      metadata: { team: 'a' },
    });
    expect(Math.abs(assistant.created_at - Date.now() / 1000)).toBeLessThan(60);
    expect(await openai.beta.assistants.retrieve(assistant.id)).toEqual(assistant);

    const thread = await openai.beta.threads.create({
      messages: [
        { role: 'user', content: 'first' },
        { role: 'assistant', content: 'second', metadata: { n: '2' } },
      ],
      metadata: { user: 'u1' },
    });
    expect(thread).toMatchObject({ id: expect.stringMatching(/^thread_/), object: 'thread', metadata: { user: 'u1' } });
    expect(await openai.beta.threads.retrieve(thread.id)).toEqual(thread);

    const third = await openai.beta.threads.messages.create(thread.id, { role: 'user', content: 'third' });
    expect(third).toMatchObject({
      id: expect.stringMatching(/^msg_/),
      object: 'thread.message',
      thread_id: thread.id,
      role: 'user',
      status: 'completed',
      content: [{ type: 'text', text: { value: 'third', annotations: [] } }],
      assistant_id: null,
      run_id: null,
    });
    const listed = await openai.beta.threads.messages.list(thread.id, { order: 'asc' });
    expect(listed.data.map((m) => [m.role, m.content[0]?.type === 'text' && m.content[0].text.value])).toEqual([
      ['user', 'first'],
      ['assistant', 'second'],
      ['user', 'third'],
    ]);
    expect(listed.data[1]?.metadata).toEqual({ n: '2' });
  });
});

describe('runs', () => {
  it('createAndPoll: the run completes, with its answer, usage and step', async () => {
    const threadId = await threadSaying('Hello there');
    const run = await openai.beta.threads.runs.createAndPoll(threadId, { assistant_id: assistantId, metadata: { via: 'rest' } });
    expect(run).toMatchObject({
      object: 'thread.run',
      thread_id: threadId,
      assistant_id: assistantId,
      status: 'completed',
      model: 'scripted',
      instructions: 'Answer briefly.',
      tools: [WEATHER],
      metadata: { via: 'rest' },
      required_action: null,
      last_error: null,
      usage: { prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number), total_tokens: expect.any(Number) },
      truncation_strategy: { type: 'auto', last_messages: null },
      tool_choice: 'auto',
      response_format: 'auto',
      parallel_tool_calls: true,
    });
    expect(run.completed_at).toEqual(expect.any(Number));

    const [answer] = (await openai.beta.threads.messages.list(threadId)).data;
    expect(answer).toMatchObject({ role: 'assistant', run_id: run.id, assistant_id: assistantId, status: 'completed' });
    expect(answer?.content).toEqual([{ type: 'text', text: { value: 'echo: Hello there', annotations: [] } }]);

    const steps = await openai.beta.threads.runs.steps.list(run.id, { thread_id: threadId });
    expect(steps.data).toHaveLength(1);
    const [step] = steps.data;
    expect(step).toMatchObject({
      object: 'thread.run.step',
      run_id: run.id,
      thread_id: threadId,
      type: 'message_creation',
      status: 'completed',
      step_details: { type: 'message_creation', message_creation: { message_id: answer?.id } },
    });
    expect(await openai.beta.threads.runs.steps.retrieve(step!.id, { thread_id: threadId, run_id: run.id })).toEqual(step);
  });

  it('a function call round trip: requires_action, submitToolOutputsAndPoll, the answer with the output', async () => {
    const threadId = await threadSaying('call get_weather {"city": "Paris"}');
    const waiting = await openai.beta.threads.runs.createAndPoll(threadId, { assistant_id: assistantId });
    expect(waiting.status).toBe('requires_action');
    const calls = waiting.required_action?.submit_tool_outputs.tool_calls ?? [];
    expect(calls).toEqual([
      { id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } },
    ]);

    const done = await openai.beta.threads.runs.submitToolOutputsAndPoll(waiting.id, {
      thread_id: threadId,
      tool_outputs: [{ tool_call_id: calls[0]!.id, output: '22°C and sunny' }],
    });
    expect(done).toMatchObject({ id: waiting.id, status: 'completed', required_action: null });

    const [answer] = (await openai.beta.threads.messages.list(threadId, { limit: 1 })).data;
    expect(answer?.content).toEqual([{ type: 'text', text: { value: 'get_weather: 22°C and sunny', annotations: [] } }]);
    const steps = await openai.beta.threads.runs.steps.list(waiting.id, { thread_id: threadId, order: 'asc' });
    expect(steps.data.map((s) => s.step_details)).toEqual([
      {
        type: 'tool_calls',
        tool_calls: [
          {
            id: calls[0]!.id,
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city": "Paris"}', output: '22°C and sunny' },
          },
        ],
      },
      { type: 'message_creation', message_creation: { message_id: answer?.id } },
    ]);
  });

  it('createAndRun and createAndRunPoll: a new thread with its messages, and a run on it', async () => {
    const queued = await openai.beta.threads.createAndRun({
      assistant_id: assistantId,
      thread: { messages: [{ role: 'user', content: 'one' }], metadata: { k: 'v' } },
    });
    expect(queued).toMatchObject({ object: 'thread.run', assistant_id: assistantId, thread_id: expect.stringMatching(/^thread_/) });
    expect(await openai.beta.threads.retrieve(queued.thread_id)).toMatchObject({ id: queued.thread_id, metadata: { k: 'v' } });

    const run = await openai.beta.threads.createAndRunPoll({
      assistant_id: assistantId,
      instructions: 'Other instructions.',
      temperature: 0.5,
      thread: { messages: [{ role: 'user', content: 'two' }] },
    });
    expect(run).toMatchObject({ status: 'completed', instructions: 'Other instructions.', temperature: 0.5 });
    const [answer] = (await openai.beta.threads.messages.list(run.thread_id)).data;
    expect(answer?.content[0]).toEqual({ type: 'text', text: { value: 'echo: two', annotations: [] } });
  });

  it('runs.cancel: a run at work is cancelled', async () => {
    const threadId = await threadSaying('sleep 60000');
    const run = await openai.beta.threads.runs.create(threadId, { assistant_id: assistantId });
    const cancelling = await openai.beta.threads.runs.cancel(run.id, { thread_id: threadId });
    expect(['cancelling', 'cancelled']).toContain(cancelling.status);
    const ended = await openai.beta.threads.runs.poll(run.id, { thread_id: threadId });
    expect(ended).toMatchObject({ status: 'cancelled', cancelled_at: expect.any(Number) });
  });

  it('runs.update replaces the metadata; runs.list lists the thread newest first', async () => {
    const threadId = await threadSaying('hi');
    const first = await openai.beta.threads.runs.createAndPoll(threadId, { assistant_id: assistantId });
    const second = await openai.beta.threads.runs.createAndPoll(threadId, { assistant_id: assistantId });
    const updated = await openai.beta.threads.runs.update(first.id, { thread_id: threadId, metadata: { tag: 'x' } });
    expect(updated).toMatchObject({ id: first.id, metadata: { tag: 'x' }, status: 'completed' });
    const page = await openai.beta.threads.runs.list(threadId);
    expect(page.data.map((r) => r.id)).toEqual([second.id, first.id]);
    expect(page.data[1]).toEqual(updated);
  });
});

describe('errors, as the client raises them', () => {
  it('NotFoundError for an unknown id, and for another project’s, with the same message', async () => {
    const threadId = await threadSaying('hi');
    const run = await openai.beta.threads.runs.createAndPoll(threadId, { assistant_id: assistantId });
    const other = client(OTHER_KEY);
    const theirs = other.beta.threads.runs.retrieve(run.id, { thread_id: threadId });
    await expect(theirs).rejects.toBeInstanceOf(NotFoundError);
    await expect(theirs).rejects.toMatchObject({ status: 404, message: `404 No thread found with id '${threadId}'.` });
    const unknownThread = 'thread_01J00000000000000000000000';
    await expect(openai.beta.threads.runs.retrieve(run.id, { thread_id: unknownThread })).rejects.toMatchObject({
      status: 404,
      message: `404 No thread found with id '${unknownThread}'.`,
    });
    await expect(other.beta.assistants.retrieve(assistantId)).rejects.toMatchObject({
      status: 404,
      error: { message: `No assistant found with id '${assistantId}'.`, type: 'invalid_request_error', param: null, code: 'NOT_FOUND' },
    });
    await expect(openai.beta.threads.runs.retrieve('run_01J00000000000000000000000', { thread_id: threadId })).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('AuthenticationError without a valid key', async () => {
    const refused = client('not-a-key-of-anyone-0123').beta.threads.create();
    await expect(refused).rejects.toBeInstanceOf(AuthenticationError);
    await expect(refused).rejects.toMatchObject({ status: 401, error: { type: 'invalid_request_error', code: 'UNAUTHENTICATED' } });
  });

  it('BadRequestError for a message beside an active run, a run that cannot be cancelled, and a field out of its range', async () => {
    const threadId = await threadSaying('call get_weather {}');
    const waiting = await openai.beta.threads.runs.createAndPoll(threadId, { assistant_id: assistantId });
    expect(waiting.status).toBe('requires_action');

    const beside = openai.beta.threads.messages.create(threadId, { role: 'user', content: 'and now?' });
    await expect(beside).rejects.toBeInstanceOf(BadRequestError);
    await expect(beside).rejects.toMatchObject({
      error: { message: `Can't add messages to ${threadId} while a run ${waiting.id} is active.`, code: 'THREAD_HAS_ACTIVE_RUN' },
    });
    const second = openai.beta.threads.runs.create(threadId, { assistant_id: assistantId });
    await expect(second).rejects.toMatchObject({
      status: 400,
      error: { message: `Thread ${threadId} already has an active run ${waiting.id}.`, code: 'THREAD_HAS_ACTIVE_RUN' },
    });

    await openai.beta.threads.runs.cancel(waiting.id, { thread_id: threadId });
    const again = openai.beta.threads.runs.cancel(waiting.id, { thread_id: threadId });
    await expect(again).rejects.toBeInstanceOf(BadRequestError);
    await expect(again).rejects.toMatchObject({
      error: { message: "Cannot cancel run with status 'cancelled'.", code: 'INVALID_RUN_STATE' },
    });
    const late = openai.beta.threads.runs.submitToolOutputs(waiting.id, { thread_id: threadId, tool_outputs: [] });
    await expect(late).rejects.toMatchObject({ status: 400, error: { code: 'INVALID_RUN_STATE' } });

    const hot = openai.beta.threads.runs.create(threadId, { assistant_id: assistantId, temperature: 3 });
    await expect(hot).rejects.toBeInstanceOf(BadRequestError);
    await expect(hot).rejects.toMatchObject({ error: { param: 'temperature', type: 'invalid_request_error', code: 'BAD_USER_INPUT' } });
  });
});

describe('one store for both APIs', () => {
  it('reads over GraphQL a run made over REST, and over REST a run made over GraphQL, alike', async () => {
    const threadId = await threadSaying('hi');
    const overRest = await openai.beta.threads.runs.createAndPoll(threadId, {
      assistant_id: assistantId,
      metadata: { made: 'rest' },
      truncation_strategy: { type: 'last_messages', last_messages: 3 },
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      response_format: { type: 'json_object' },
    });
    const read = await t.ok<{ run: Record<string, unknown> }>(
      `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) {
        id threadId assistantId status createdAt completedAt model instructions metadata
        truncationStrategy { type lastMessages } toolChoice { mode function { name } } responseFormat { type }
        requiredAction { type } usage { promptTokens completionTokens totalTokens } } }`,
      { t: threadId, r: overRest.id },
    );
    expect(read.run).toEqual({
      id: overRest.id,
      threadId,
      assistantId,
      status: 'REQUIRES_ACTION',
      createdAt: overRest.created_at,
      completedAt: null,
      model: 'scripted',
      instructions: 'Answer briefly.',
      metadata: { made: 'rest' },
      truncationStrategy: { type: 'LAST_MESSAGES', lastMessages: 3 },
      toolChoice: { mode: null, function: { name: 'get_weather' } },
      responseFormat: { type: 'JSON_OBJECT' },
      requiredAction: { type: 'submit_tool_outputs' },
      usage: null,
    });
    expect(overRest.status).toBe('requires_action');
    await openai.beta.threads.runs.cancel(overRest.id, { thread_id: threadId });

    const overGraphql = await t.ok<{ createRun: { id: string } }>(
      `mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a, metadata: { made: "graphql" }, maxCompletionTokens: 300 }) { id } }`,
      { t: threadId, a: assistantId },
    );
    const done = await openai.beta.threads.runs.poll(overGraphql.createRun.id, { thread_id: threadId });
    expect(done).toMatchObject({
      id: overGraphql.createRun.id,
      status: 'completed',
      metadata: { made: 'graphql' },
      max_completion_tokens: 300,
    });
    const list = await openai.beta.threads.runs.list(threadId);
    expect(list.data.map((r) => r.id)).toEqual([overGraphql.createRun.id, overRest.id]);
  });
});

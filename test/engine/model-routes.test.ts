/**
 * Model routes and what a run takes from them: two local OpenAI-compatible endpoints on
 * real ports, each serving the models its route names; a model no route serves refused up
 * front (GraphQL and REST); the assistant's sampling settings inherited by its runs;
 * token budgets that hold across the calls of a tool loop; AUTO truncation to the budget
 * or the route's context window; and the scripted model's JSON_SCHEMA answers.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { parseModelRoutes, routeFor, type ModelRoute } from '../../src/engine/providers/routes.js';
import { createAssistant, createRun, createThread, RUN_FIELDS } from '../support/fixtures.js';
import { startFakeOpenAI, textChunks, toolCallChunks, type FakeOpenAI } from '../support/fake-openai.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

describe('parsing and matching routes', () => {
  const env = { LOCAL_KEY: 'sk-local' };
  const defaults = { maxRetries: 2 };

  it('takes a JSON array or a file holding one, resolves apiKeyEnv, and fills maxRetries from OPENAI_MAX_RETRIES', () => {
    const json = JSON.stringify([
      { models: ['gpt-*', 'o3'], baseUrl: 'https://api.example.com/v1', apiKey: 'sk-a', timeoutMs: 30000 },
      { models: 'llama*', baseUrl: 'http://127.0.0.1:11434/v1', apiKeyEnv: 'LOCAL_KEY', maxRetries: 0, contextWindow: 8192 },
    ]);
    const routes = parseModelRoutes(json, env, defaults);
    expect(routes).toEqual([
      {
        models: ['gpt-*', 'o3'],
        baseURL: 'https://api.example.com/v1',
        apiKey: 'sk-a',
        timeoutMs: 30000,
        maxRetries: 2,
        contextWindow: undefined,
      },
      {
        models: ['llama*'],
        baseURL: 'http://127.0.0.1:11434/v1',
        apiKey: 'sk-local',
        timeoutMs: undefined,
        maxRetries: 0,
        contextWindow: 8192,
      },
    ]);
    const file = join(mkdtempSync(join(tmpdir(), 'routes-')), 'routes.json');
    writeFileSync(file, json);
    expect(parseModelRoutes(file, env, defaults)).toEqual(routes);
  });

  it('refuses what cannot route, saying what is wrong', () => {
    const bad = (value: string) => () => parseModelRoutes(value, env, defaults);
    expect(bad('[{"models": []}]')).toThrow(/models/);
    expect(bad('[{"models": "g*pt"}]')).toThrow(/'\*' may only end a pattern/);
    expect(bad('[{"models": "x", "baseUrl": "not a url"}]')).toThrow(/baseUrl/);
    expect(bad('[{"models": "x", "apiKeyEnv": "NOT_SET"}]')).toThrow(/NOT_SET is not set/);
    expect(bad('[{"models": "x", "apiKey": "a", "apiKeyEnv": "LOCAL_KEY"}]')).toThrow(/not both/);
    expect(bad('[{"models": "x", "colour": "red"}]')).toThrow(/colour/);
    expect(bad('[{"models": "x"')).toThrow(/not valid JSON/);
    expect(bad('/no/such/routes.json')).toThrow(/cannot read the routes file/);
  });

  it('is read from MODEL_ROUTES at start, and a bad value stops the start', () => {
    const config = loadConfig({
      MODEL_ROUTES: '[{"models": "llama*", "apiKeyEnv": "LOCAL_KEY"}]',
      LOCAL_KEY: 'sk-local',
      OPENAI_MAX_RETRIES: '5',
    });
    expect(config.modelRoutes).toMatchObject([{ models: ['llama*'], apiKey: 'sk-local', maxRetries: 5 }]);
    expect(loadConfig({}).modelRoutes).toEqual([]);
    expect(() => loadConfig({ MODEL_ROUTES: '[{"models": "llama*", "apiKeyEnv": "LOCAL_KEY"}]' })).toThrow(
      /Invalid environment:\n {2}MODEL_ROUTES: .*LOCAL_KEY is not set/,
    );
  });

  it('matches exact names and prefixes, first match wins, and never routes the scripted model', () => {
    const route = (models: string[], baseURL: string): ModelRoute => ({
      models,
      baseURL,
      apiKey: undefined,
      timeoutMs: undefined,
      maxRetries: 0,
      contextWindow: undefined,
    });
    const routes = [route(['gpt-4o'], 'exact'), route(['gpt-*'], 'prefix'), route(['*'], 'all')];
    expect(routeFor(routes, 'gpt-4o')?.baseURL).toBe('exact');
    expect(routeFor(routes, 'gpt-4o-mini')?.baseURL).toBe('prefix');
    expect(routeFor(routes, 'llama3')?.baseURL).toBe('all');
    expect(routeFor(routes, 'scripted')).toBeUndefined();
    expect(routeFor(routes, 'scripted-2')).toBeUndefined();
    expect(routeFor([route(['gpt-*'], 'prefix')], 'llama3')).toBeUndefined();
  });
});

let t: TestApp;
let cloud: FakeOpenAI;
let local: FakeOpenAI;
beforeAll(async () => {
  [cloud, local] = await Promise.all([startFakeOpenAI(), startFakeOpenAI()]);
  const route = (models: string[], upstream: FakeOpenAI, apiKey: string, contextWindow?: number): ModelRoute => ({
    models,
    baseURL: upstream.baseURL,
    apiKey,
    timeoutMs: 10_000,
    maxRetries: 0,
    contextWindow,
  });
  t = await startTestApp({
    worker: true,
    modelRoutes: [
      route(['gpt-*'], cloud, 'sk-cloud'),
      route(['llama-small'], local, 'sk-local', 120),
      route(['llama*'], local, 'sk-local'),
    ],
  });
});
afterAll(async () => {
  await t?.close();
  await Promise.all([cloud?.close(), local?.close()]);
});
beforeEach(() => {
  cloud.requests.length = 0;
  local.requests.length = 0;
});

const READ = `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { ${RUN_FIELDS} temperature topP responseFormat { type } } }`;

async function until(threadId: string, runId: string, ...statuses: string[]) {
  const deadline = Date.now() + 25_000;
  let last: any;
  while (Date.now() < deadline) {
    last = (await t.ok(READ, { t: threadId, r: runId })).run;
    if (statuses.includes(last.status)) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`run stayed ${last?.status}`);
}

async function lastText(threadId: string): Promise<string> {
  const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages(first: 1) { nodes { role text } } } }`, { t: threadId });
  return data.thread.messages.nodes[0].text;
}

const SUBMIT = `mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { id } }`;

describe('two endpoints, each serving the models its route names', () => {
  it('sends each model to its own endpoint, with its own key, streamed', async () => {
    cloud.reply({ kind: 'stream', chunks: textChunks('from the cloud'), usage: { prompt_tokens: 5, completion_tokens: 3 } });
    local.reply({ kind: 'stream', chunks: textChunks('from this machine'), usage: { prompt_tokens: 6, completion_tokens: 4 } });
    const gpt = await createAssistant(t, { model: 'gpt-4o', tools: [] });
    const llama = await createAssistant(t, { model: 'llama3.1', tools: [] });
    const [t1, t2] = await Promise.all([createThread(t, 'one'), createThread(t, 'two')]);
    const r1 = await createRun(t, t1, { assistantId: gpt });
    expect((await until(t1, r1.id, 'COMPLETED', 'FAILED')).usage).toEqual({ promptTokens: 5, completionTokens: 3, totalTokens: 8 });
    const r2 = await createRun(t, t2, { assistantId: llama });
    expect((await until(t2, r2.id, 'COMPLETED', 'FAILED')).usage).toEqual({ promptTokens: 6, completionTokens: 4, totalTokens: 10 });
    expect(await lastText(t1)).toBe('from the cloud');
    expect(await lastText(t2)).toBe('from this machine');
    expect(cloud.requests.map((r) => [r.body.model, r.body.stream, r.authorization])).toEqual([['gpt-4o', true, 'Bearer sk-cloud']]);
    expect(local.requests.map((r) => [r.body.model, r.body.stream, r.authorization])).toEqual([['llama3.1', true, 'Bearer sk-local']]);
  });

  it('lets a run name another routed model than its assistant', async () => {
    local.reply({ kind: 'stream', chunks: textChunks('local'), usage: { prompt_tokens: 1, completion_tokens: 1 } });
    const gpt = await createAssistant(t, { model: 'gpt-4o', tools: [] });
    const threadId = await createThread(t, 'hi');
    const run = await createRun(t, threadId, { assistantId: gpt, model: 'llama3.2' });
    expect((await until(threadId, run.id, 'COMPLETED', 'FAILED')).status).toBe('COMPLETED');
    expect(cloud.requests).toEqual([]);
    expect(local.requests.map((r) => r.body.model)).toEqual(['llama3.2']);
  });
});

describe('MODEL_NOT_AVAILABLE', () => {
  const CREATE = 'mutation($i: CreateAssistantInput!) { createAssistant(input: $i) { id } }';
  const refused = (res: any) => ({ code: res.errors?.[0]?.extensions?.code, model: res.errors?.[0]?.extensions?.model, data: res.data });

  it('refuses createAssistant, modifyAssistant and createRun with a model no route serves, and writes nothing', async () => {
    expect(refused(await t.gql(CREATE, { i: { model: 'claude-3' } }))).toEqual({
      code: 'MODEL_NOT_AVAILABLE',
      model: 'claude-3',
      data: null,
    });
    const assistantId = await createAssistant(t, { model: 'gpt-4o' });
    const modify = await t.gql('mutation($a: ID!, $i: ModifyAssistantInput!) { modifyAssistant(assistantId: $a, input: $i) { id } }', {
      a: assistantId,
      i: { model: 'mistral' },
    });
    expect(refused(modify)).toEqual({ code: 'MODEL_NOT_AVAILABLE', model: 'mistral', data: null });
    expect((await t.ok('query($a: ID!) { assistant(id: $a) { model } }', { a: assistantId })).assistant.model).toBe('gpt-4o');
    const threadId = await createThread(t);
    const run = await t.gql('mutation($t: ID!, $i: CreateRunInput!) { createRun(threadId: $t, input: $i) { id } }', {
      t: threadId,
      i: { assistantId, model: 'mistral' },
    });
    expect(refused(run)).toEqual({ code: 'MODEL_NOT_AVAILABLE', model: 'mistral', data: null });
    expect(
      (await t.ok('query($t: ID!) { thread(id: $t) { runs(first: 5) { nodes { id } } } }', { t: threadId })).thread.runs.nodes,
    ).toEqual([]);
  });

  it('answers REST as the API answers a bad field: 400 invalid_request_error on param model', async () => {
    const openai = new OpenAI({ apiKey: 'any', baseURL: t.restUrl, maxRetries: 0 });
    const error = await openai.beta.assistants.create({ model: 'claude-3' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const { status, error: body } = error as InstanceType<typeof OpenAI.BadRequestError>;
    expect({ status, body }).toMatchObject({
      status: 400,
      body: { type: 'invalid_request_error', param: 'model', code: 'MODEL_NOT_AVAILABLE', message: expect.stringMatching(/claude-3/) },
    });
    const assistant = await openai.beta.assistants.create({ model: 'gpt-4o' });
    const updated = await openai.beta.assistants.update(assistant.id, { model: 'mistral' }).catch((e: unknown) => e);
    expect((updated as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'model', code: 'MODEL_NOT_AVAILABLE' });
    const thread = await openai.beta.threads.create();
    const run = await openai.beta.threads.runs.create(thread.id, { assistant_id: assistant.id, model: 'mistral' }).catch((e: unknown) => e);
    expect((run as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'model', code: 'MODEL_NOT_AVAILABLE' });
  });
});

describe("runs take the assistant's sampling settings unless they set their own", () => {
  const FORMAT = {
    type: 'JSON_SCHEMA',
    jsonSchema: { name: 'weather', schema: { type: 'object', properties: { c: { type: 'number' } } } },
  };

  it('keeps temperature, topP and responseFormat on the assistant (GraphQL), and runs inherit them', async () => {
    const data = await t.ok(
      'mutation($i: CreateAssistantInput!) { createAssistant(input: $i) { id temperature topP responseFormat { type jsonSchema { name } } } }',
      { i: { model: 'scripted', temperature: 0.2, topP: 0.5, responseFormat: FORMAT } },
    );
    expect(data.createAssistant).toMatchObject({
      temperature: 0.2,
      topP: 0.5,
      responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { name: 'weather' } },
    });
    const assistantId = data.createAssistant.id;
    const threadId = await createThread(t);
    const inherited = await createRun(t, threadId, { assistantId });
    const read = (await until(threadId, inherited.id, 'COMPLETED', 'FAILED', 'INCOMPLETE')) as any;
    expect({ temperature: read.temperature, topP: read.topP, format: read.responseFormat.type }).toEqual({
      temperature: 0.2,
      topP: 0.5,
      format: 'JSON_SCHEMA',
    });
    const own = await createRun(t, threadId, { assistantId, temperature: 1.5, responseFormat: { type: 'TEXT' } });
    const ownRead = (await until(threadId, own.id, 'COMPLETED', 'FAILED', 'INCOMPLETE')) as any;
    expect({ temperature: ownRead.temperature, topP: ownRead.topP, format: ownRead.responseFormat.type }).toEqual({
      temperature: 1.5,
      topP: 0.5,
      format: 'TEXT',
    });
    // null sets a setting back to the API's default.
    const modified = await t.ok(
      'mutation($a: ID!, $i: ModifyAssistantInput!) { modifyAssistant(assistantId: $a, input: $i) { temperature topP responseFormat { type } } }',
      { a: assistantId, i: { temperature: null, topP: 0.9 } },
    );
    expect(modified.modifyAssistant).toEqual({ temperature: 1, topP: 0.9, responseFormat: { type: 'JSON_SCHEMA' } });
  });

  it('sends what the run inherited to the endpoint, and shows it over REST', async () => {
    cloud.reply({ kind: 'stream', chunks: textChunks('{"ok":true}'), usage: { prompt_tokens: 1, completion_tokens: 1 } });
    const openai = new OpenAI({ apiKey: 'any', baseURL: t.restUrl, maxRetries: 0 });
    const assistant = await openai.beta.assistants.create({
      model: 'gpt-4o',
      temperature: 0.3,
      top_p: 0.8,
      response_format: { type: 'json_object' },
    });
    expect(assistant).toMatchObject({ temperature: 0.3, top_p: 0.8, response_format: { type: 'json_object' } });
    const thread = await openai.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    const run = await openai.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, { pollIntervalMs: 50 });
    expect(run).toMatchObject({ status: 'completed', temperature: 0.3, top_p: 0.8, response_format: { type: 'json_object' } });
    expect(cloud.requests[0].body).toMatchObject({ temperature: 0.3, top_p: 0.8, response_format: { type: 'json_object' } });
  });
});

describe('token budgets across the calls of a tool loop', () => {
  async function toolRun(input: Record<string, unknown>, firstUsage: { prompt_tokens: number; completion_tokens: number }) {
    cloud.reply({
      kind: 'stream',
      chunks: toolCallChunks([{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }]),
      usage: firstUsage,
    });
    const assistantId = await createAssistant(t, { model: 'gpt-4o' });
    const threadId = await createThread(t, 'Weather in Paris?');
    const run = await createRun(t, threadId, { assistantId, ...input });
    await until(threadId, run.id, 'REQUIRES_ACTION');
    return { threadId, runId: run.id as string };
  }

  it('gives the next call only what is left of maxCompletionTokens, and ends INCOMPLETE when it runs out', async () => {
    const { threadId, runId } = await toolRun({ maxCompletionTokens: 400 }, { prompt_tokens: 50, completion_tokens: 300 });
    expect(cloud.requests[0].body.max_completion_tokens).toBe(400);
    cloud.reply({ kind: 'stream', chunks: textChunks('It is sunny and', 'length'), usage: { prompt_tokens: 60, completion_tokens: 100 } });
    await t.ok(SUBMIT, { t: threadId, r: runId, o: [{ toolCallId: 'call_1', output: '22C' }] });
    const done = await until(threadId, runId, 'COMPLETED', 'INCOMPLETE', 'FAILED');
    expect(cloud.requests[1].body.max_completion_tokens).toBe(100);
    expect(done).toMatchObject({
      status: 'INCOMPLETE',
      incompleteDetails: { reason: 'MAX_COMPLETION_TOKENS' },
      usage: { promptTokens: 110, completionTokens: 400, totalTokens: 510 },
    });
  });

  it('makes no further call once the completion budget is spent', async () => {
    const { threadId, runId } = await toolRun({ maxCompletionTokens: 256 }, { prompt_tokens: 50, completion_tokens: 256 });
    await t.ok(SUBMIT, { t: threadId, r: runId, o: [{ toolCallId: 'call_1', output: '22C' }] });
    const done = await until(threadId, runId, 'COMPLETED', 'INCOMPLETE', 'FAILED');
    expect(done).toMatchObject({ status: 'INCOMPLETE', incompleteDetails: { reason: 'MAX_COMPLETION_TOKENS' } });
    expect(done.usage.completionTokens).toBe(256);
    expect(cloud.requests).toHaveLength(1);
  });

  it('makes no call whose prompt would go past what is left of maxPromptTokens', async () => {
    const { threadId, runId } = await toolRun({ maxPromptTokens: 300 }, { prompt_tokens: 290, completion_tokens: 10 });
    await t.ok(SUBMIT, { t: threadId, r: runId, o: [{ toolCallId: 'call_1', output: '22C' }] });
    const done = await until(threadId, runId, 'COMPLETED', 'INCOMPLETE', 'FAILED');
    expect(done).toMatchObject({ status: 'INCOMPLETE', incompleteDetails: { reason: 'MAX_PROMPT_TOKENS' } });
    expect(done.usage.promptTokens).toBe(290);
    expect(cloud.requests).toHaveLength(1);
  });
});

describe('AUTO truncation', () => {
  async function longThread(count: number, model = 'scripted') {
    const messages = Array.from({ length: count }, (_, i) => ({
      role: i % 2 ? 'ASSISTANT' : 'USER',
      content: `message ${i} ${'word '.repeat(30)}`,
    }));
    messages.push({ role: 'USER', content: 'the last question' });
    const data = await t.ok('mutation($i: CreateThreadInput) { createThread(input: $i) { id } }', { i: { messages } });
    const assistantId = await createAssistant(t, { model, tools: [], instructions: 'Be brief.' });
    return { threadId: data.createThread.id as string, assistantId };
  }

  it('drops the oldest messages to fit maxPromptTokens, keeping the instructions and the last user message', async () => {
    const { threadId, assistantId } = await longThread(20);
    const run = await createRun(t, threadId, { assistantId, maxPromptTokens: 256 });
    const done = await until(threadId, run.id, 'COMPLETED', 'INCOMPLETE', 'FAILED');
    expect(done.status).toBe('COMPLETED');
    expect(done.usage.promptTokens).toBeLessThanOrEqual(256);
    expect(done.usage.promptTokens).toBeGreaterThan(100); // it kept what fits, not only what must stay
    expect(await lastText(threadId)).toBe('echo: the last question');
  });

  it('still ends INCOMPLETE with LAST_MESSAGES, which drops nothing more', async () => {
    const { threadId, assistantId } = await longThread(20);
    const run = await createRun(t, threadId, {
      assistantId,
      maxPromptTokens: 256,
      truncationStrategy: { type: 'LAST_MESSAGES', lastMessages: 20 },
    });
    const done = await until(threadId, run.id, 'COMPLETED', 'INCOMPLETE', 'FAILED');
    expect(done).toMatchObject({ status: 'INCOMPLETE', incompleteDetails: { reason: 'MAX_PROMPT_TOKENS' } });
  });

  it("fits the prompt to the route's context window", async () => {
    local.reply({ kind: 'stream', chunks: textChunks('short'), usage: { prompt_tokens: 100, completion_tokens: 1 } });
    const { threadId, assistantId } = await longThread(6, 'llama-small');
    const run = await createRun(t, threadId, { assistantId });
    expect((await until(threadId, run.id, 'COMPLETED', 'INCOMPLETE', 'FAILED')).status).toBe('COMPLETED');
    const sent: { role: string; content: string }[] = local.requests[0].body.messages;
    expect(sent[0]).toEqual({ role: 'system', content: 'Be brief.' });
    expect(sent.at(-1)).toEqual({ role: 'user', content: 'the last question' });
    // Each old message is ~35 tokens: of six, those that fit in 120 with the rest are the newest.
    expect(sent.length).toBeLessThan(8);
    expect(sent.length).toBeGreaterThan(2);
    const kept = sent.slice(1, -1).map((m) => Number(m.content.split(' ')[1]));
    expect(kept).toEqual(kept.map((_, i) => 6 - kept.length + i));
  });
});

describe("the scripted model's structured outputs", () => {
  it('answers JSON_SCHEMA with JSON that validates against the schema', async () => {
    const schema = {
      type: 'object',
      properties: {
        city: { type: 'string', minLength: 2, maxLength: 20 },
        temperature: { type: 'number', minimum: -40, maximum: 50 },
        conditions: { type: 'array', items: { enum: ['sunny', 'cloudy', 'rain'] }, minItems: 1, maxItems: 3 },
      },
      required: ['city', 'temperature', 'conditions'],
      additionalProperties: false,
    };
    const assistantId = await createAssistant(t, { tools: [] });
    const threadId = await createThread(t, 'Weather in Paris?');
    const run = await createRun(t, threadId, {
      assistantId,
      responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { name: 'weather', schema } },
    });
    expect((await until(threadId, run.id, 'COMPLETED', 'FAILED', 'INCOMPLETE')).status).toBe('COMPLETED');
    const answer = JSON.parse(await lastText(threadId));
    const validate = new Ajv().compile(schema);
    expect(validate(answer), JSON.stringify(validate.errors)).toBe(true);
  });

  it('fails the run with invalid_prompt, promptly, when the schema asks for more than it can make in time', async () => {
    const schema = { type: 'array', minItems: 50_000_000, items: { type: 'string', minLength: 64 } };
    const assistantId = await createAssistant(t, { tools: [] });
    const threadId = await createThread(t, 'Everything, please.');
    const run = await createRun(t, threadId, {
      assistantId,
      responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { name: 'huge', schema } },
    });
    const done = await until(threadId, run.id, 'COMPLETED', 'FAILED', 'INCOMPLETE');
    expect(done).toMatchObject({ status: 'FAILED', lastError: { code: 'INVALID_PROMPT' } });
  });
});

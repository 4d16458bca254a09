/**
 * The REST API's HTTP contract, request by request: what each endpoint answers, lists and
 * their pages, refusals with their status, `param` and code, idempotent retries, and what
 * a request must be. In open local mode, without a worker (runs stay queued unless a spec
 * moves them). Every answer is held to OpenAI's OpenAPI description (test/support/openapi.ts).
 */
import { request } from 'node:http';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorAnswer } from '../../src/rest/errors.js';
import { contractFetch, expectMatches, type ContractFetch } from '../support/openapi.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const MAX_RESPONSE_BYTES = 300_000;

let t: TestApp;
let contract: ContractFetch;
let assistantId: string;

beforeAll(async () => {
  t = await startTestApp({ maxResponseBytes: MAX_RESPONSE_BYTES });
  contract = contractFetch();
  assistantId = (await call('POST', '/assistants', { model: 'scripted', tools: [{ type: 'function', function: { name: 'get_weather' } }] }))
    .body.id;
});
afterAll(async () => {
  await t?.close();
});
afterEach(() => {
  expect(contract.violations.splice(0)).toEqual([]);
});

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

/** A request to /v1 (JSON unless `body` is a string), through the contract's fetch. */
async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await contract.fetch(`${t.restUrl}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** The API's error answer. */
const refusal = (status: number, message: string | RegExp, param: string | null, code: string, type = 'invalid_request_error') => ({
  status,
  body: { error: { message: typeof message === 'string' ? message : expect.stringMatching(message), type, param, code } },
});

const answered = ({ status, body }: Answer) => ({ status, body });

async function newThread(content = 'hello'): Promise<string> {
  return (await call('POST', '/threads', { messages: [{ role: 'user', content }] })).body.id;
}

/** `count` runs on the thread, each ended at once (a thread has one active run at a time), oldest first. */
async function endedRuns(threadId: string, count: number): Promise<string[]> {
  const { runs } = t.app.services;
  const ids = [];
  for (let i = 0; i < count; i++) {
    const run = await runs.create('default', threadId, { assistantId });
    await runs.cancel('default', threadId, run.id);
    ids.push(run.id);
  }
  return ids;
}

describe('open local mode', () => {
  it('serves a request with no key, or with any key, as GraphQL does', async () => {
    const none = await call('POST', '/threads', {});
    const any = await call('GET', `/threads/${none.body.id}`, undefined, { authorization: 'Bearer whatever-it-is' });
    expect([none.status, any.status]).toEqual([200, 200]);
    // Stamped and logged as every request is (request-log.ts).
    expect(none.headers.get('x-request-id')).toMatch(/^[\w.-]+$/);
    expect(await t.ok(`query($id: ID!) { thread(id: $id) { id } }`, { id: none.body.id })).toEqual({ thread: { id: none.body.id } });
  });

  it('asks no CSRF header of a JSON POST, and grants no cross-origin preflight', async () => {
    const posted = await call('POST', '/threads', {}, { origin: 'https://elsewhere.example' });
    expect(posted.status).toBe(200);
    const preflight = await contract.fetch(`${t.restUrl}/threads`, {
      method: 'OPTIONS',
      headers: { origin: 'https://elsewhere.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(404);
    expect([...preflight.headers.keys()].filter((h) => h.startsWith('access-control-'))).toEqual([]);
  });

  it('refuses a body a browser could send cross-site without a preflight (form, text/plain)', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await call('POST', '/threads', '{}', { 'content-type': type });
      expect(answered(res)).toEqual(
        refusal(415, 'Request bodies must be JSON, sent with Content-Type: application/json.', null, 'UNSUPPORTED_MEDIA_TYPE'),
      );
    }
  });
});

describe('runs', () => {
  it('tells pollers when to look again while a run is not settled, and stops once it is', async () => {
    const threadId = await newThread();
    const queued = await call('POST', `/threads/${threadId}/runs`, { assistant_id: assistantId });
    expect(queued.body.status).toBe('queued');
    expect(queued.headers.get('openai-poll-after-ms')).toBe('250');
    const read = await call('GET', `/threads/${threadId}/runs/${queued.body.id}`);
    expect(read.body).toEqual(queued.body);
    expect(read.headers.get('openai-poll-after-ms')).toBe('250');
    const cancelled = await call('POST', `/threads/${threadId}/runs/${queued.body.id}/cancel`);
    expect(cancelled.body.status).toBe('cancelled');
    expect(cancelled.headers.get('openai-poll-after-ms')).toBeNull();
  });

  it('modifies a run’s metadata, and answers the run as it is without any', async () => {
    const threadId = await newThread();
    const run = (await call('POST', `/threads/${threadId}/runs`, { assistant_id: assistantId, metadata: { a: '1' } })).body;
    const same = await call('POST', `/threads/${threadId}/runs/${run.id}`, {});
    expect(same.body).toEqual(run);
    const modified = await call('POST', `/threads/${threadId}/runs/${run.id}`, { metadata: { b: '2' } });
    expect(modified.body).toEqual({ ...run, metadata: { b: '2' } });
  });

  it('takes every run option, and shows it as the API does', async () => {
    const threadId = await newThread();
    const created = await call('POST', `/threads/${threadId}/runs`, {
      assistant_id: assistantId,
      model: 'scripted-2',
      instructions: 'Be terse.',
      additional_instructions: 'Really.',
      additional_messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'part one' },
            { type: 'text', text: 'part two' },
          ],
        },
      ],
      tools: [{ type: 'function', function: { name: 'lookup', description: 'Looks up', parameters: { type: 'object' }, strict: true } }],
      temperature: 0.2,
      top_p: 0.9,
      max_prompt_tokens: 1000,
      max_completion_tokens: 500,
      truncation_strategy: { type: 'last_messages', last_messages: 2 },
      tool_choice: 'required',
      parallel_tool_calls: false,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true } },
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      model: 'scripted-2',
      instructions: 'Be terse.',
      tools: [{ type: 'function', function: { name: 'lookup', description: 'Looks up', parameters: { type: 'object' }, strict: true } }],
      temperature: 0.2,
      top_p: 0.9,
      max_prompt_tokens: 1000,
      max_completion_tokens: 500,
      truncation_strategy: { type: 'last_messages', last_messages: 2 },
      tool_choice: 'required',
      parallel_tool_calls: false,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true } },
    });
    const messages = await call('GET', `/threads/${threadId}/messages?order=asc`);
    expect(messages.body.data.map((m: any) => m.content[0].text.value)).toEqual(['hello', 'part one\npart two']);
  });
});

describe('lists', () => {
  let threadId: string;
  let runIds: string[];
  beforeAll(async () => {
    threadId = await newThread();
    runIds = await endedRuns(threadId, 5);
  });
  const newestFirst = () => [...runIds].reverse();

  it('pages newest first by limit, then after the last id, then before the first', async () => {
    const first = await call('GET', `/threads/${threadId}/runs?limit=2`);
    expect(first.body).toMatchObject({ object: 'list', first_id: newestFirst()[0], last_id: newestFirst()[1], has_more: true });
    expect(first.body.data.map((r: any) => r.id)).toEqual(newestFirst().slice(0, 2));
    const second = await call('GET', `/threads/${threadId}/runs?limit=2&after=${first.body.last_id}`);
    expect(second.body.data.map((r: any) => r.id)).toEqual(newestFirst().slice(2, 4));
    expect(second.body.has_more).toBe(true);
    const last = await call('GET', `/threads/${threadId}/runs?limit=2&after=${second.body.last_id}`);
    expect(last.body).toMatchObject({ data: [{ id: runIds[0] }], has_more: false });
    const back = await call('GET', `/threads/${threadId}/runs?limit=2&before=${second.body.first_id}`);
    expect(back.body.data.map((r: any) => r.id)).toEqual(newestFirst().slice(0, 2));
    expect(back.body.has_more).toBe(false);
    const backFurther = await call('GET', `/threads/${threadId}/runs?limit=1&before=${second.body.first_id}`);
    expect(backFurther.body).toMatchObject({ data: [{ id: newestFirst()[1] }], has_more: true });
  });

  it('orders oldest first with order=asc, 20 to a page by default', async () => {
    const asc = await call('GET', `/threads/${threadId}/runs?order=asc`);
    expect(asc.body.data.map((r: any) => r.id)).toEqual(runIds);
    expect(asc.body.has_more).toBe(false);
  });

  it('answers an empty list with no first or last id', async () => {
    const empty = await newThread();
    expect((await call('GET', `/threads/${empty}/runs`)).body).toEqual({
      object: 'list',
      data: [],
      first_id: null,
      last_id: null,
      has_more: false,
    });
  });

  it('refuses a limit out of 1..100, an unknown order and a cursor that is not one of its ids, naming the parameter', async () => {
    for (const limit of ['0', '101', 'ten']) {
      expect(answered(await call('GET', `/threads/${threadId}/runs?limit=${limit}`))).toEqual(
        refusal(400, /^Invalid input: limit: /, 'limit', 'BAD_USER_INPUT'),
      );
    }
    expect(answered(await call('GET', `/threads/${threadId}/runs?order=sideways`))).toEqual(
      refusal(400, /^Invalid input: order: /, 'order', 'BAD_USER_INPUT'),
    );
    expect(answered(await call('GET', `/threads/${threadId}/runs?after=msg_01J00000000000000000000000`))).toEqual(
      refusal(
        400,
        "Invalid input: after: 'msg_01J00000000000000000000000' is not an id of the objects listed (run_...).",
        'after',
        'BAD_USER_INPUT',
      ),
    );
  });

  it('lists a thread’s messages (all, or those of one run) and a run’s steps the same way', async () => {
    const messages = await call('GET', `/threads/${threadId}/messages`);
    expect(messages.body).toMatchObject({ object: 'list', data: [{ role: 'user' }], has_more: false });
    const steps = await call('GET', `/threads/${threadId}/runs/${runIds[0]}/steps`);
    expect(steps.body).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });
    // The user's message belongs to no run: the run's list is empty (no worker wrote an answer).
    const ofRun = await call('GET', `/threads/${threadId}/messages?run_id=${runIds[0]}`);
    expect(ofRun.body).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });
    expect(answered(await call('GET', `/threads/${threadId}/runs/run_01J00000000000000000000000/steps`))).toEqual(
      refusal(404, "No run found with id 'run_01J00000000000000000000000'.", null, 'NOT_FOUND'),
    );
  });

  it('lets the official client page through more than 100 runs with for await', async () => {
    const many = await newThread();
    const ids = await endedRuns(many, 105);
    const openai = new OpenAI({ apiKey: 'any', baseURL: t.restUrl, fetch: contract.fetch, maxRetries: 0 });
    const seen: string[] = [];
    const checkedBefore = contract.checked;
    for await (const run of openai.beta.threads.runs.list(many)) seen.push(run.id);
    expect(seen).toEqual(ids.reverse());
    // Pages of 20: six of them.
    expect(contract.checked - checkedBefore).toBe(6);
  });
});

describe('what a request must be', () => {
  it('answers a path or method it does not serve as the API does', async () => {
    expect(answered(await call('GET', '/nothing-here'))).toEqual(refusal(404, 'Invalid URL (GET /v1/nothing-here)', null, 'NOT_FOUND'));
    const threadId = await newThread();
    expect(answered(await call('DELETE', `/threads/${threadId}/runs`))).toEqual(
      refusal(404, `Invalid URL (DELETE /v1/threads/${threadId}/runs)`, null, 'NOT_FOUND'),
    );
  });

  it('refuses an unknown field of a closed body, naming it', async () => {
    expect(answered(await call('POST', '/threads', { metadata: {}, colour: 'blue' }))).toEqual(
      refusal(400, 'Invalid input: colour: unknown parameter', 'colour', 'BAD_USER_INPUT'),
    );
  });

  it('refuses a body that is not a JSON object', async () => {
    expect(answered(await call('POST', '/threads', '{"messages": ['))).toEqual(
      refusal(400, 'The body is not valid JSON.', null, 'BAD_USER_INPUT'),
    );
    expect(answered(await call('POST', '/threads', '[]'))).toEqual(refusal(400, 'The body must be a JSON object.', null, 'BAD_USER_INPUT'));
  });

  it('refuses a body over MAX_BODY_BYTES (413) or of unknown length (411), in the API’s shape', async () => {
    const big = await call('POST', '/threads', { messages: [{ role: 'user', content: 'x'.repeat(1_100_000) }] });
    expect(answered(big)).toEqual(refusal(413, 'Request bodies are limited to 1048576 bytes.', null, 'PAYLOAD_TOO_LARGE'));
    const chunked = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
      const req = request(`${t.restUrl}/threads`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('error', reject);
      req.write('{}');
      req.end();
    });
    expect(chunked.status).toBe(411);
    expectMatches('ErrorResponse', JSON.parse(chunked.body));
    expect(JSON.parse(chunked.body).error.code).toBe('LENGTH_REQUIRED');
  });

  it('refuses what no column can keep (NUL), and keeps a lone surrogate as U+FFFD', async () => {
    const threadId = await newThread();
    expect(answered(await call('POST', `/threads/${threadId}/messages`, { role: 'user', content: 'a\u0000b' }))).toEqual(
      refusal(400, 'Invalid input: content: must not contain NUL (U+0000) characters.', 'content', 'BAD_USER_INPUT'),
    );
    expect(answered(await call('POST', '/threads', { metadata: { 'k\u0000': 'v' } }))).toEqual(
      refusal(400, /NUL/, 'metadata.k\u0000', 'BAD_USER_INPUT'),
    );
    const kept = await call('POST', `/threads/${threadId}/messages`, { role: 'user', content: 'half \ud83d pair' });
    expect(kept.body.content[0].text.value).toBe('half \ufffd pair');
  });

  it('names the field at fault, as REST spells it, whichever rule refuses it', async () => {
    const threadId = await newThread();
    const run = (body: Record<string, unknown>) => call('POST', `/threads/${threadId}/runs`, { assistant_id: assistantId, ...body });
    const cases: [Record<string, unknown>, string][] = [
      [{ tools: [{ type: 'code_interpreter' }] }, 'tools[0].type'],
      [{ truncation_strategy: { type: 'last_messages' } }, 'truncation_strategy.last_messages'],
      [{ response_format: { type: 'json_schema' } }, 'response_format.json_schema'],
      [{ tool_choice: { type: 'function', function: { name: 'not_a_tool' } } }, 'tool_choice.function.name'],
      [{ max_completion_tokens: 10 }, 'max_completion_tokens'],
      [
        { additional_messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x' } }] }] },
        'additional_messages[0].content[0].type',
      ],
      [{ metadata: { k: 1 } }, 'metadata.k'],
      [{ stream: 'yes' }, 'stream'],
      [{ reasoning_effort: 'high' }, 'reasoning_effort'],
    ];
    for (const [body, param] of cases) {
      const res = await run(body);
      expect({ body, status: res.status, param: res.body.error.param, code: res.body.error.code }).toEqual({
        body,
        status: 400,
        param,
        code: 'BAD_USER_INPUT',
      });
    }
    expect((await call('POST', '/assistants', { model: 'scripted', temperature: 2.5 })).body.error.param).toBe('temperature');
    // A model no route serves has a code of its own, on the same field.
    const unserved = await run({ model: 'gpt-nothing' });
    expect({ status: unserved.status, param: unserved.body.error.param, code: unserved.body.error.code }).toEqual({
      status: 400,
      param: 'model',
      code: 'MODEL_NOT_AVAILABLE',
    });
    expect((await call('POST', '/assistants', { model: 'scripted', temperature: 1, tool_resources: {} })).status).toBe(200);
  });

  it('names the tool outputs at fault', async () => {
    const threadId = await newThread('call get_weather {}');
    const run = await t.app.services.runs.create('default', threadId, { assistantId });
    // The engine's face moves the run by hand: no worker here.
    await t.app.engine.transition(run.id, 'in_progress');
    await t.app.engine.requireAction(run.id, [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }]);
    const wrong = await call('POST', `/threads/${threadId}/runs/${run.id}/submit_tool_outputs`, {
      tool_outputs: [{ tool_call_id: 'call_2', output: 'x' }],
    });
    expect(answered(wrong)).toEqual(
      refusal(
        400,
        /^Invalid toolOutputs: missing outputs for tool calls call_1; unknown tool call ids call_2\.$/,
        'tool_outputs',
        'BAD_USER_INPUT',
      ),
    );
  });

  it('accepts OpenAI-Beta: assistants=v2 and refuses another version of the Assistants API', async () => {
    expect((await call('POST', '/threads', {}, { 'openai-beta': 'assistants=v2' })).status).toBe(200);
    expect(answered(await call('POST', '/threads', {}, { 'openai-beta': 'assistants=v1' }))).toEqual(
      refusal(400, 'Runway serves the Assistants API v2: send OpenAI-Beta: assistants=v2.', 'OpenAI-Beta', 'BAD_USER_INPUT'),
    );
  });

  it('answers an Idempotency-Key’s retry with the first object, and refuses it for another request', async () => {
    const key = { 'idempotency-key': `thread-${Date.now()}` };
    const first = await call('POST', '/threads', { metadata: { n: '1' } }, key);
    const retry = await call('POST', '/threads', { metadata: { n: '1' } }, key);
    expect(retry.body).toEqual(first.body);
    expect(answered(await call('POST', '/threads', { metadata: { n: '2' } }, key))).toEqual(
      refusal(400, /was already used for a request with other input/, 'Idempotency-Key', 'BAD_USER_INPUT'),
    );
    expect(answered(await call('POST', '/threads', {}, { 'idempotency-key': 'has spaces' }))).toEqual(
      refusal(400, /^Invalid Idempotency-Key: /, 'Idempotency-Key', 'BAD_USER_INPUT'),
    );
  });

  it('refuses an answer larger than MAX_RESPONSE_BYTES, and serves a smaller page', async () => {
    const long = 'x'.repeat(200_000);
    const threadId = await newThread(long);
    await call('POST', `/threads/${threadId}/messages`, { role: 'user', content: long });
    expect((await call('GET', `/threads/${threadId}/messages?limit=1`)).status).toBe(200);
    expect(answered(await call('GET', `/threads/${threadId}/messages?limit=2`))).toEqual(
      refusal(400, /^The answer would be larger than 300000 bytes/, null, 'RESPONSE_TOO_LARGE'),
    );
  });

  it('answers a bug as a 500 that says nothing of it', () => {
    const bug = new Error('secret detail at /src/runs/sql/x.ts:12');
    expect(errorAnswer(bug)).toEqual({
      status: 500,
      body: { error: { message: 'Unexpected error.', type: 'server_error', param: null, code: 'INTERNAL_SERVER_ERROR' } },
      retryAfterSeconds: undefined,
      bug: true,
    });
  });
});

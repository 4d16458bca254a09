/**
 * Size limits on what a tenant may send (docs/operations.md, Limits): every path that
 * takes a message, instructions, a tool output or a JSON schema refuses one over its
 * limit with BAD_USER_INPUT naming the field and the limit, and writes nothing; JSON
 * nested thousands deep is refused the same way, over HTTP and websockets, never
 * overflowing a stack.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '../../src/domain/input-rules.js';
import { createAssistant, createRun, createThread, WEATHER_TOOL } from '../support/fixtures.js';
import WebSocket from 'ws';
import { eventually, startTestApp, type GraphQLResponse, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ maxBodyBytes: 4 * 1024 * 1024 });
});
afterAll(async () => {
  await t?.close();
});

const CREATE_THREAD = 'mutation($input: CreateThreadInput) { createThread(input: $input) { id } }';
const CREATE_MESSAGE = 'mutation($t: ID!, $input: CreateMessageInput!) { createMessage(threadId: $t, input: $input) { id } }';
const CREATE_RUN = 'mutation($t: ID!, $input: CreateRunInput!) { createRun(threadId: $t, input: $input) { id } }';
const CREATE_ASSISTANT = 'mutation($input: CreateAssistantInput!) { createAssistant(input: $input) { id } }';
const SUBMIT =
  'mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { id status } }';

function expectRefused(res: GraphQLResponse, field: string, limit: RegExp) {
  expect(res.errors, JSON.stringify(res).slice(0, 500)).toHaveLength(1);
  const [error] = res.errors!;
  expect(error!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', fields: [field] });
  expect(error!.message).toContain(field);
  expect(error!.message).toMatch(limit);
  expect(res.data ?? null).toBeNull();
}

/** A JSON object nested `depth` levels deep (`{}` is one level). */
function nestedObject(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = { type: 'string' };
  let levels = 1;
  for (; levels + 2 <= depth; levels += 2) value = { type: 'object', properties: { a: value } };
  return levels < depth ? { type: 'object', properties: value } : value;
}

/** The deepest nesting of objects and arrays in a JSON text (of strings without brackets). */
function depthOf(json: string): number {
  let depth = 0;
  let deepest = 0;
  for (const c of json) {
    if (c === '{' || c === '[') deepest = Math.max(deepest, ++depth);
    else if (c === '}' || c === ']') depth--;
  }
  return deepest;
}

const over = LIMITS.messageContentLength + 1;
const CONTENT = /at most 256000 characters/;
const INSTRUCTIONS = /at most 256000 characters/;

describe('message content and instructions: at most 256,000 characters', () => {
  it('createThread', async () => {
    expectRefused(
      await t.gql(CREATE_THREAD, { input: { messages: [{ role: 'USER', content: 'x'.repeat(over) }] } }),
      'input.messages.0.content',
      CONTENT,
    );
    const ok = await t.gql(CREATE_THREAD, { input: { messages: [{ role: 'USER', content: 'x'.repeat(over - 1) }] } });
    expect(ok.errors).toBeUndefined();
  });

  it('createMessage', async () => {
    const threadId = await createThread(t);
    expectRefused(
      await t.gql(CREATE_MESSAGE, { t: threadId, input: { role: 'USER', content: 'é'.repeat(over) } }),
      'input.content',
      CONTENT,
    );
    const messages = await t.ok('query($t: ID!) { thread(id: $t) { messages { nodes { id } } } }', { t: threadId });
    expect(messages.thread.messages.nodes).toHaveLength(1);
  });

  it('createRun: additional messages, instructions, additional instructions', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const long = 'x'.repeat(over);
    for (const [input, field] of [
      [{ additionalMessages: [{ role: 'USER', content: long }] }, 'input.additionalMessages.0.content'],
      [{ instructions: long }, 'input.instructions'],
      [{ additionalInstructions: long }, 'input.additionalInstructions'],
    ] as const) {
      expectRefused(await t.gql(CREATE_RUN, { t: threadId, input: { assistantId, ...input } }), field, INSTRUCTIONS);
    }
    const runs = await t.ok('query($t: ID!) { runs(threadId: $t) { nodes { id } } }', { t: threadId });
    expect(runs.runs.nodes).toEqual([]);
    await createRun(t, threadId, { assistantId, instructions: 'x'.repeat(over - 1), additionalInstructions: 'y'.repeat(over - 1) });
  });

  it('createAssistant: instructions', async () => {
    expectRefused(
      await t.gql(CREATE_ASSISTANT, { input: { model: 'scripted', instructions: 'x'.repeat(over) } }),
      'input.instructions',
      INSTRUCTIONS,
    );
  });
});

describe('tool outputs: at most 512 KB of UTF-8', () => {
  async function waitingRun() {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const { id: runId } = await createRun(t, threadId, { assistantId });
    const call = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };
    await t.app.engine.transition(runId, 'in_progress');
    await t.app.engine.requireAction(runId, [call]);
    return { threadId, runId };
  }

  it('refuses one byte more, counted in UTF-8, and takes the limit itself', async () => {
    const { threadId, runId } = await waitingRun();
    const bytes = /at most 524288 bytes/;
    // 'é' is two bytes: half as many characters as bytes.
    for (const output of ['x'.repeat(LIMITS.toolOutputBytes + 1), 'é'.repeat(LIMITS.toolOutputBytes / 2) + 'x']) {
      expectRefused(await t.gql(SUBMIT, { t: threadId, r: runId, o: [{ toolCallId: 'call_1', output }] }), 'toolOutputs.0.output', bytes);
    }
    const ok = await t.ok(SUBMIT, { t: threadId, r: runId, o: [{ toolCallId: 'call_1', output: 'é'.repeat(LIMITS.toolOutputBytes / 2) }] });
    expect(ok.submitToolOutputs.status).toBe('QUEUED');
  });
});

describe('JSON schemas (tool parameters, response formats): at most 64 levels deep and 100 KB', () => {
  const tools = (parameters: unknown) => [{ type: 'FUNCTION', function: { name: 'f', parameters } }];
  const format = (schema: unknown) => ({ type: 'JSON_SCHEMA', jsonSchema: { name: 'answer', schema } });
  const DEPTH = /at most 64 levels deep/;
  const SIZE = /at most 102400 bytes/;

  it('takes 64 levels and refuses 65, on every path', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const deepest = nestedObject(64);
    expect(depthOf(JSON.stringify(deepest))).toBe(64);
    const tooDeep = { wrapper: deepest };
    await t.ok(CREATE_ASSISTANT, { input: { model: 'scripted', tools: tools(deepest) } });
    expectRefused(
      await t.gql(CREATE_ASSISTANT, { input: { model: 'scripted', tools: tools(tooDeep) } }),
      'input.tools.0.function.parameters',
      DEPTH,
    );
    expectRefused(
      await t.gql(CREATE_RUN, { t: threadId, input: { assistantId, tools: tools(tooDeep) } }),
      'input.tools.0.function.parameters',
      DEPTH,
    );
    expectRefused(
      await t.gql(CREATE_RUN, { t: threadId, input: { assistantId, responseFormat: format(tooDeep) } }),
      'input.responseFormat.jsonSchema.schema',
      DEPTH,
    );
    // Arrays count as levels too.
    const arrays = { type: 'array', items: JSON.parse(`${'['.repeat(64)}${']'.repeat(64)}`) };
    expectRefused(
      await t.gql(CREATE_RUN, { t: threadId, input: { assistantId, responseFormat: format(arrays) } }),
      'input.responseFormat.jsonSchema.schema',
      DEPTH,
    );
    await createRun(t, threadId, { assistantId, tools: tools(deepest), responseFormat: format(deepest) });
  });

  it('refuses a schema over 100 KB as JSON', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const wide = {
      type: 'object',
      properties: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`p${i}`, { type: 'string', description: 'x'.repeat(40) }])),
    };
    expect(Buffer.byteLength(JSON.stringify(wide))).toBeGreaterThan(LIMITS.jsonSchemaBytes);
    expectRefused(
      await t.gql(CREATE_ASSISTANT, { input: { model: 'scripted', tools: tools(wide) } }),
      'input.tools.0.function.parameters',
      SIZE,
    );
    expectRefused(
      await t.gql(CREATE_RUN, { t: threadId, input: { assistantId, responseFormat: format(wide) } }),
      'input.responseFormat.jsonSchema.schema',
      SIZE,
    );
  });

  /** The body of a request whose JSON schema nests `depth` arrays: built as text, as no JSON.stringify could. */
  function deepArraysBody(query: string, variablesBefore: string, depth: number, variablesAfter: string) {
    return `{"query":${JSON.stringify(query)},"variables":${variablesBefore}${'['.repeat(depth)}${']'.repeat(depth)}${variablesAfter}}`;
  }
  async function post(body: string): Promise<{ status: number; body: GraphQLResponse }> {
    const res = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: res.status, body: (await res.json()) as GraphQLResponse };
  }
  function deepObjectText(depth: number) {
    return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
  }

  it('refuses JSON nested 5,000 deep and 200,000 nested arrays with BAD_USER_INPUT, not an internal error', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const assistantsBefore = await t.app.database.db.execute('select count(*)::int as n from assistants');
    const cases: [string, string][] = [
      [
        deepArraysBody(
          CREATE_ASSISTANT,
          '{"input":{"model":"scripted","tools":[{"type":"FUNCTION","function":{"name":"f","parameters":{"x":',
          200_000,
          '}}}]}}',
        ),
        'input.tools.0.function.parameters',
      ],
      [
        `{"query":${JSON.stringify(CREATE_ASSISTANT)},"variables":{"input":{"model":"scripted","tools":[{"type":"FUNCTION","function":{"name":"f","parameters":${deepObjectText(5000)}}}]}}}`,
        'input.tools.0.function.parameters',
      ],
      [
        deepArraysBody(
          CREATE_RUN,
          `{"t":"${threadId}","input":{"assistantId":"${assistantId}","responseFormat":{"type":"JSON_SCHEMA","jsonSchema":{"name":"n","schema":{"x":`,
          200_000,
          '}}}}}',
        ),
        'input.responseFormat.jsonSchema.schema',
      ],
      [
        `{"query":${JSON.stringify(CREATE_RUN)},"variables":{"t":"${threadId}","input":{"assistantId":"${assistantId}","tools":[{"type":"FUNCTION","function":{"name":"f","parameters":${deepObjectText(5000)}}}]}}}`,
        'input.tools.0.function.parameters',
      ],
    ];
    for (const [body, field] of cases) {
      const res = await post(body);
      expect(res.status).toBe(200);
      expectRefused(res.body, field, DEPTH);
    }
    const assistantsAfter = await t.app.database.db.execute('select count(*)::int as n from assistants');
    expect(assistantsAfter).toEqual(assistantsBefore);
    const runs = await t.ok('query($t: ID!) { runs(threadId: $t) { nodes { id } } }', { t: threadId });
    expect(runs.runs.nodes).toEqual([]);
    // Still serving.
    await createAssistant(t, { tools: [WEATHER_TOOL] });
  });

  it('refuses them over a websocket too', async () => {
    // Raw graphql-transport-ws: no client's JSON.stringify could send 100,000 nested arrays.
    const socket = new WebSocket(t.wsUrl, 'graphql-transport-ws');
    const messages: { type: string; id?: string; payload?: unknown }[] = [];
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init' }));
    await eventually(() => messages.some((m) => m.type === 'connection_ack'));
    // 100,000 nested arrays: 200 KB, within the websocket's message limit.
    const arrays = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    socket.send(
      `{"type":"subscribe","id":"1","payload":{"query":${JSON.stringify(CREATE_ASSISTANT)},"variables":{"input":{"model":"scripted","tools":[{"type":"FUNCTION","function":{"name":"f","parameters":{"x":${arrays}}}}]}}}}`,
    );
    await eventually(() => messages.some((m) => m.id === '1' && m.type !== 'next'), 10_000);
    const next = messages.find((m) => m.id === '1' && m.type === 'next');
    expectRefused(next?.payload as GraphQLResponse, 'input.tools.0.function.parameters', DEPTH);
    expect(messages.find((m) => m.id === '1' && m.type !== 'next')?.type).toBe('complete');
    socket.close();
  });
});

describe('a document nested too deep to parse', () => {
  it('is a syntax error, not an internal one, even with the token limit raised', async () => {
    const raised = await startTestApp({ queryLimits: { maxTokens: 10_000_000 }, maxBodyBytes: 4 * 1024 * 1024 });
    try {
      for (const literal of [deepObjectLiteral(5000), `{x: ${'['.repeat(200_000)}${']'.repeat(200_000)}}`]) {
        const query = `mutation { createAssistant(input: { model: "scripted", tools: [{ type: FUNCTION, function: { name: "f", parameters: ${literal} } }] }) { id } }`;
        const res = await fetch(raised.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query }),
        });
        const body = (await res.json()) as GraphQLResponse;
        expect(res.status).toBeLessThan(500);
        expect(body.errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
        expect(body.errors?.[0]?.message).toMatch(/nests too deeply/);
      }
      // Literals within the limits still parse and are checked as variables are.
      const res = await raised.gql(
        `mutation { createAssistant(input: { model: "scripted", tools: [{ type: FUNCTION, function: { name: "f", parameters: ${deepObjectLiteral(65)} } }] }) { id } }`,
      );
      expectRefused(res, 'input.tools.0.function.parameters', /at most 64 levels deep/);
    } finally {
      await raised.close();
    }
  });
});

function deepObjectLiteral(depth: number) {
  return `${'{a: '.repeat(depth)}1${'}'.repeat(depth)}`;
}

/**
 * The README's first run, as written: every ```graphql block of its "A first run, in
 * GraphiQL" section in order, against a real server with its worker, the way a new user
 * pastes them into GraphiQL, with the variables its JSON block shows.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { collect, eventually, startTestApp, type TestApp } from './support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t?.close();
});

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
/** The section, from its heading to the next one of its level. */
const section = /^## A first run, in GraphiQL\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1] ?? '';
const blocks = [...section.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]!);
const variablesShown = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]!) as Record<string, string>);

it('has the first run in the README', () => {
  expect(blocks).toHaveLength(12);
});

it('shows the variables pane with every variable the operations use, and no other', () => {
  expect(variablesShown).toHaveLength(1);
  const used = new Set(blocks.flatMap((block) => [...block.matchAll(/\$(\w+)/g)].map((m) => m[1]!)));
  expect(Object.keys(variablesShown[0]!).sort()).toEqual([...used].sort());
});

it('works when pasted block by block', async () => {
  const vars: Record<string, any> = {};
  const [assistant, thread, subscribe, createRun, inspect, submit, read, addSleep, createRun2, cancel, watchContent, addPaced] = blocks as [
    string,
    ...string[],
  ];

  vars.assistantId = (await t.ok(assistant)).createAssistant.id;
  vars.threadId = (await t.ok(thread!)).createThread.id;
  // A person pastes the next block seconds later; the test must wait until the
  // subscription has fixed its starting position (after which nothing is missed).
  const positioned = startingPositionRead(vars.threadId);
  const sub = collect(t.wsClient(), subscribe!, { threadId: vars.threadId });
  await positioned;

  vars.runId = (await t.ok(createRun!, vars)).createRun.id;
  await eventually(() => sub.events.some((e) => e.data!.threadRunsChanged.status === 'REQUIRES_ACTION'));
  const waiting = await t.ok(inspect!, vars);
  expect(waiting.run.status).toBe('REQUIRES_ACTION');
  vars.callId = waiting.run.requiredAction.submitToolOutputs.toolCalls[0].id;
  expect((await t.ok(submit!, vars)).submitToolOutputs.status).toBe('QUEUED');

  await eventually(() => sub.events.some((e) => e.data!.threadRunsChanged.status === 'COMPLETED'));
  const answer = await t.ok(read!, vars);
  expect(answer.thread.messages.nodes.at(-1)).toMatchObject({ role: 'ASSISTANT', text: 'get_weather: 22°C and sunny' });
  expect(answer.runs.nodes[0].usage.totalTokens).toBeGreaterThan(0);

  await t.ok(addSleep!, vars);
  vars.runId = (await t.ok(createRun2!, vars)).createRun.id;
  await eventually(() => sub.events.filter((e) => e.data!.threadRunsChanged.status === 'IN_PROGRESS').length === 3);
  expect((await t.ok(cancel!, vars)).cancelRun.status).toBe('CANCELLING');
  await eventually(() => sub.events.some((e) => e.data!.threadRunsChanged.status === 'CANCELLED'));
  sub.stop();

  expect(sub.events.map((e) => e.data!.threadRunsChanged.status)).toEqual([
    'QUEUED',
    'IN_PROGRESS',
    'REQUIRES_ACTION',
    'QUEUED',
    'IN_PROGRESS',
    'COMPLETED',
    'QUEUED',
    'IN_PROGRESS',
    'CANCELLING',
    'CANCELLED',
  ]);

  // The answer, token by token, in a subscription of its own.
  const contentPositioned = latestRunRead(vars.threadId);
  const content = collect(t.wsClient(), watchContent!, { threadId: vars.threadId });
  await contentPositioned;
  await t.ok(addPaced!, vars);
  vars.runId = (await t.ok(createRun2!, vars)).createRun.id;
  await eventually(() => content.events.some((e) => e.data!.threadEvents.status === 'COMPLETED'), 15_000);
  content.stop();
  const events = content.events.map((e) => e.data!.threadEvents);
  const deltas = events.filter((e) => e.__typename === 'MessageDeltaEvent');
  expect(deltas.length).toBeGreaterThan(5);
  const completed = events.find((e) => e.__typename === 'MessageEvent' && e.kind === 'COMPLETED');
  expect(deltas.map((d) => d.text).join('')).toBe('echo: pace 50\nTell me a story about 🐙 octopuses.');
  expect(completed.message.status).toBe('COMPLETED');

  // The ids shown in the variables pane look like the ones the operations returned.
  const prefixes = (v: Record<string, unknown>) => Object.fromEntries(Object.entries(v).map(([k, id]) => [k, String(id).split('_')[0]]));
  expect(prefixes(vars)).toEqual(prefixes(variablesShown[0]!));
});

/** Resolves once a threadRunsChanged subscription on the thread has read where the thread's history ends. */
function startingPositionRead(threadId: string): Promise<void> {
  const history = t.app.services.history;
  const read = history.lastThreadPosition.bind(history);
  return new Promise((resolve) => {
    history.lastThreadPosition = async (id) => {
      const position = await read(id);
      if (id === threadId) {
        history.lastThreadPosition = read;
        resolve();
      }
      return position;
    };
  });
}

/** Resolves once a threadEvents subscription on the thread has read where to start (its latest run). */
function latestRunRead(threadId: string): Promise<void> {
  const history = t.app.services.history;
  const read = history.latestRun.bind(history);
  return new Promise((resolve) => {
    history.latestRun = async (id) => {
      const run = await read(id);
      if (id === threadId) {
        history.latestRun = read;
        resolve();
      }
      return run;
    };
  });
}

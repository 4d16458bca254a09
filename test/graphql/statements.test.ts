/**
 * No N+1: a thread's runs with their steps cost the same number of SQL statements
 * whatever the page size. Statements are counted as the app sends them.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { drivers } from '../support/database.js';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
let counting = false;
let statements: string[] = [];
let threadId = '';
const RUNS = 30;
const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };

beforeAll(async () => {
  // With Redis fan-out, the outbox relay's statements (after earlier writes) are not the request's.
  t = await startTestApp({ onQuery: (sql) => void (counting && !sql.includes('"event_outbox"') && statements.push(sql)) });
  const assistantId = await createAssistant(t);
  threadId = await createThread(t);
  const { runs } = t.app.services;
  const engine = t.app.engine;
  for (let i = 0; i < RUNS; i++) {
    const run = await createRun(t, threadId, { assistantId });
    // Each run gets a TOOL_CALLS step, cancelled with the run.
    await engine.transition(run.id, 'in_progress');
    await engine.requireAction(run.id, [CALL]);
    await engine.transition(run.id, 'cancelled');
  }
});
afterAll(async () => {
  await t?.close();
});

const NESTED = `query($t: ID!, $first: Int!) { thread(id: $t) { id runs(first: $first) { nodes { id
  steps { nodes { id type status } pageInfo { hasNextPage } } } } } }`;

async function countStatements(first: number) {
  statements = [];
  counting = true;
  const data = await t.ok(NESTED, { t: threadId, first });
  counting = false;
  return { count: statements.length, runs: data.thread.runs.nodes as any[] };
}

it('reads a thread, a page of its runs and all their steps in 3 statements, for 5, 20 or 30 runs', async () => {
  const counts: number[] = [];
  for (const first of [5, 20, 30]) {
    const { count, runs } = await countStatements(first);
    counts.push(count);
    expect(runs).toHaveLength(first);
    for (const run of runs) {
      expect(run.steps.nodes).toEqual([{ id: expect.stringMatching(/^step_/), type: 'TOOL_CALLS', status: 'CANCELLED' }]);
      expect(run.steps.pageInfo.hasNextPage).toBe(false);
    }
  }
  expect(counts).toEqual([3, 3, 3]);
});

it('gives each run its own steps (the batch does not mix them up)', async () => {
  const { runs } = await countStatements(30);
  for (const run of runs) {
    const own = await t.app.engine.steps(run.id);
    expect(run.steps.nodes.map((s: any) => s.id)).toEqual(own.map((s) => s.id));
  }
});

it('creates a run in two statements: the assistant, then one that writes the run, its messages and its event', async () => {
  const assistantId = await createAssistant(t);
  const fresh = await createThread(t);
  statements = [];
  counting = true;
  const run = await createRun(t, fresh, { assistantId, additionalMessages: [{ role: 'USER', content: 'one more thing' }] });
  counting = false;
  expect(statements).toHaveLength(2);
  expect(statements[0]).toMatch(/from "assistants"/);
  expect(statements[1]).toMatch(/^with "thread" as \(update "threads"/);
  // It announces its own event: a NOTIFY, or with Redis a row of the outbox (published after the commit).
  expect(statements[1]).toContain(drivers.redisUrl ? 'runway_outbox_append' : 'pg_notify');
  const data = await t.ok(
    `query($t: ID!) { thread(id: $t) { messages(order: ASC) { nodes { text } } } }`,
    { t: fresh },
  );
  expect(data.thread.messages.nodes.map((m: any) => m.text)).toEqual(['Hello', 'one more thing']);
  expect(await t.app.services.history.eventsAfter(run.id, 0)).toEqual([
    expect.objectContaining({ runId: run.id, threadId: fresh, threadSeq: 1, version: 1, previousStatus: null, status: 'queued' }),
  ]);
});

it('creates the runs asked for together in one statement, each with its own messages and event, and fails a bad one alone', async () => {
  const assistantId = await createAssistant(t);
  const { runs } = t.app.services;
  const engine = t.app.engine;
  const project = 'default'; // open local mode
  const idle = await Promise.all([1, 2, 3, 4].map((i) => createThread(t, `thread ${i}`)));
  // A run first, so the assistant is known (assistants never change: read once), and the
  // four calls below reach the database in the same turn.
  await runs.create(project, await createThread(t), { assistantId });
  statements = [];
  counting = true;
  const created = await Promise.all(
    idle.map((threadId, i) => runs.create(project, threadId, { assistantId, additionalMessages: [{ role: 'user', content: `more ${i}` }] })),
  );
  counting = false;
  expect(statements).toHaveLength(1);
  expect(statements[0]).toMatch(/^with "thread" as \(update "threads"/);
  for (const [i, run] of created.entries()) {
    expect(run).toMatchObject({ threadId: idle[i], threadSeq: 1, status: 'queued' });
    expect(await t.app.services.history.eventsAfter(run.id, 0)).toEqual([
      expect.objectContaining({ runId: run.id, threadId: idle[i], threadSeq: 1, version: 1, status: 'queued' }),
    ]);
    const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages(order: ASC) { nodes { text } } } }`, { t: idle[i] });
    expect(data.thread.messages.nodes.map((m: any) => m.text)).toEqual([`thread ${i + 1}`, `more ${i}`]);
  }

  // In one batch: a thread busy with the run above, a thread that does not exist, an idle
  // one, and project "other" asking for a run on the idle one: one statement for all.
  const [busy, fresh] = [idle[0]!, await createThread(t)];
  statements = [];
  counting = true;
  const outcomes = await Promise.allSettled([
    runs.create(project, busy, { assistantId, additionalMessages: [{ role: 'user', content: 'not added' }] }),
    runs.create(project, 'thread_missing', { assistantId }),
    runs.create(project, fresh, { assistantId }),
    runs.create('other', fresh, { assistantId, additionalMessages: [{ role: 'user', content: 'not added either' }] }),
  ]);
  counting = false;
  expect(statements.filter((s) => s.startsWith('with "thread"'))).toHaveLength(1);
  expect(outcomes[0]).toMatchObject({ status: 'rejected', reason: { code: 'THREAD_HAS_ACTIVE_RUN', details: { runId: created[0]!.id } } });
  expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: { code: 'NOT_FOUND' } });
  expect(outcomes[2]).toMatchObject({ status: 'fulfilled', value: { threadId: fresh, status: 'queued' } });
  expect(outcomes[3]).toMatchObject({ status: 'rejected', reason: { code: 'NOT_FOUND' } });
  // Nothing of the refused runs was written: their messages neither.
  const texts = async (threadId: string) =>
    (await t.ok(`query($t: ID!) { thread(id: $t) { messages(order: ASC) { nodes { text } } } }`, { t: threadId })).thread.messages.nodes.map(
      (m: any) => m.text,
    );
  expect(await texts(busy)).toEqual(['thread 1', 'more 0']);
  expect(await texts(fresh)).toEqual(['Hello']);
});

it('creates one of two runs asked for together on one thread, and refuses the other as the thread is busy', async () => {
  const assistantId = await createAssistant(t);
  const { runs } = t.app.services;
  const engine = t.app.engine;
  const threadId = await createThread(t);
  await runs.create('default', await createThread(t), { assistantId }); // the assistant is known: both reach one batch
  statements = [];
  counting = true;
  const outcomes = await Promise.allSettled([runs.create('default', threadId, { assistantId }), runs.create('default', threadId, { assistantId })]);
  counting = false;
  // The second waits for the next statement, which finds the thread busy and leaves it out.
  expect(statements.filter((s) => s.startsWith('with "thread"'))).toHaveLength(2);
  const created = outcomes.filter((o) => o.status === 'fulfilled');
  expect(created).toHaveLength(1);
  const winner = (created[0] as PromiseFulfilledResult<{ id: string }>).value;
  expect(outcomes.find((o) => o.status === 'rejected')).toMatchObject({
    reason: { code: 'THREAD_HAS_ACTIVE_RUN', details: { runId: winner.id } },
  });
  expect(winner).toMatchObject({ threadSeq: 1 });
});

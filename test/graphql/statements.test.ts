/**
 * No N+1: a thread's runs with their steps cost the same number of SQL statements
 * whatever the page size; and every read is one statement, its project check included.
 * Statements are counted as the app sends them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  // Not the request's: with Redis fan-out, the outbox relay's statements (after earlier
  // writes); in open local mode, the poll for a first API key (every 5 s).
  const background = (sql: string) => sql.includes('"event_outbox"') || sql.includes('"api_keys"');
  t = await startTestApp({ onQuery: (sql) => void (counting && !background(sql) && statements.push(sql)) });
  const assistantId = await createAssistant(t);
  threadId = await createThread(t);
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

/** The statements `work` sends, and what it returned. */
async function counted<T>(work: () => Promise<T>): Promise<{ count: number; result: T; statements: string[] }> {
  statements = [];
  counting = true;
  try {
    const result = await work();
    return { count: statements.length, result, statements };
  } finally {
    counting = false;
  }
}

describe('every read is one statement, its project check included', () => {
  const RUNS_PAGE = `query($t: ID!, $first: Int, $after: String, $last: Int, $before: String, $order: SortOrder, $status: [RunStatus!]) {
    runs(threadId: $t, first: $first, after: $after, last: $last, before: $before, order: $order, status: $status) {
      nodes { id } pageInfo { hasNextPage endCursor } } }`;

  it("runs(threadId): a page of the thread's runs, whatever its arguments", async () => {
    const first = await counted(() => t.ok(RUNS_PAGE, { t: threadId, first: 5 }));
    expect(first.count).toBe(1);
    expect(first.result.runs.nodes).toHaveLength(5);
    const variants = [
      { first: 5, after: first.result.runs.pageInfo.endCursor },
      { first: 5, order: 'ASC' },
      { last: 5, before: first.result.runs.pageInfo.endCursor },
      { status: ['CANCELLED'] },
    ];
    for (const vars of variants) {
      const { count, result } = await counted(() => t.ok(RUNS_PAGE, { t: threadId, ...vars }));
      expect(count, JSON.stringify(vars)).toBe(1);
      expect(result.runs.nodes.length, JSON.stringify(vars)).toBeGreaterThan(0);
    }
  });

  it('runs(threadId): a thread with no runs is an empty page, and a missing or foreign thread NOT_FOUND, in one statement', async () => {
    const empty = await createThread(t);
    const none = await counted(() => t.ok(RUNS_PAGE, { t: empty }));
    expect(none.count).toBe(1);
    expect(none.result.runs).toEqual({ nodes: [], pageInfo: { hasNextPage: false, endCursor: null } });

    const missing = await counted(() => t.gql(RUNS_PAGE, { t: 'thread_missing' }));
    expect(missing.count).toBe(1);
    expect(missing.result.errors?.map((e) => e.extensions?.['code'])).toEqual(['NOT_FOUND']);

    // Open local mode is project "default": another project asks for its thread.
    const foreign = await counted(() => t.app.services.runs.list('another-project', threadId, {}).catch((e) => e));
    expect(foreign.count).toBe(1);
    expect(foreign.result).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('runStep: the step, its run, thread and project checked together', async () => {
    const { nodes } = (await t.ok(RUNS_PAGE, { t: threadId, first: 1 })).runs;
    const runId = nodes[0].id;
    const [step] = await t.app.engine.steps(runId);
    const STEP = `query($t: ID!, $r: ID!, $s: ID!) { runStep(threadId: $t, runId: $r, stepId: $s) { id } }`;
    const found = await counted(() => t.ok(STEP, { t: threadId, r: runId, s: step!.id }));
    expect(found).toMatchObject({ count: 1, result: { runStep: { id: step!.id } } });
    const otherThread = await createThread(t);
    const elsewhere = await counted(() => t.ok(STEP, { t: otherThread, r: runId, s: step!.id }));
    expect(elsewhere).toMatchObject({ count: 1, result: { runStep: null } });
  });

  it('node and nodes: one statement per type of node asked for', async () => {
    const data = await t.ok(
      `query($t: ID!) { thread(id: $t) { messages { nodes { id } } runs(first: 2) { nodes { id steps { nodes { id } } } } } }`,
      {
        t: threadId,
      },
    );
    const [run1, run2] = data.thread.runs.nodes;
    const message = data.thread.messages.nodes[0].id;
    const step = run1.steps.nodes[0].id;
    const one = await counted(() => t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: run1.id }));
    expect(one).toMatchObject({ count: 1, result: { node: { id: run1.id } } });
    const ids = [run1.id, threadId, run2.id, message, step, 'run_missing', 'not-an-id'];
    const many = await counted(() => t.ok(`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, { ids }));
    expect(many.count).toBe(4); // runs, threads, messages, steps
    expect(many.result.nodes).toEqual([...ids.slice(0, 5).map((id) => ({ id })), null, null]);
    const assistants = [await createAssistant(t), await createAssistant(t), 'asst_missing'];
    const three = await counted(() => t.ok(`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, { ids: assistants }));
    expect(three).toMatchObject({ count: 1, result: { nodes: [{ id: assistants[0] }, { id: assistants[1] }, null] } });
  });
});

it('where live streams start: the reads of one turn are one statement, each answered as its own; a later turn reads again', async () => {
  const page = await t.ok(`query($t: ID!) { runs(threadId: $t, first: 2) { nodes { id } } }`, { t: threadId });
  const [a, b] = (page.runs.nodes as { id: string }[]).map((n) => n.id) as [string, string];
  const history = t.app.services.history;
  const together = await counted(() =>
    Promise.all([
      ...Array.from({ length: 5 }, () => history.runNow('default', a)),
      history.runNow('default', b),
      history.runNow('another-project', a),
      history.runNow('default', 'run_none'),
    ]),
  );
  expect(together.count).toBe(1);
  expect(together.result.map((now) => now?.run.id)).toEqual([a, a, a, a, a, b, undefined, undefined]);
  expect(together.result[0]).toMatchObject({
    event: { runId: a, status: 'cancelled' },
    position: { version: together.result[0]!.run.version },
  });

  await t.ok(`mutation($t: ID!, $r: ID!) { modifyRun(threadId: $t, runId: $r, metadata: { turn: "later" }) { id } }`, {
    t: threadId,
    r: a,
  });
  const later = await counted(() => history.runNow('default', a));
  expect(later.count).toBe(1);
  expect(later.result?.run.metadata).toEqual({ turn: 'later' });
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
  expect(statements[1]).toContain(drivers.redisUrl ? 'runway_outbox_append' : 'runway_notify');
  const data = await t.ok(`query($t: ID!) { thread(id: $t) { messages(order: ASC) { nodes { text } } } }`, { t: fresh });
  expect(data.thread.messages.nodes.map((m: any) => m.text)).toEqual(['Hello', 'one more thing']);
  expect(await t.app.services.history.eventsAfter(run.id, 0)).toEqual([
    expect.objectContaining({ runId: run.id, threadId: fresh, threadSeq: 1, version: 1, previousStatus: null, status: 'queued' }),
  ]);
});

it('creates the runs asked for together in one statement, each with its own messages and event, and fails a bad one alone', async () => {
  const assistantId = await createAssistant(t);
  const { runs } = t.app.services;
  const project = 'default'; // open local mode
  const idle = await Promise.all([1, 2, 3, 4].map((i) => createThread(t, `thread ${i}`)));
  // A run first, so the assistant is known (assistants never change: read once), and the
  // four calls below reach the database in the same turn.
  await runs.create(project, await createThread(t), { assistantId });
  statements = [];
  counting = true;
  const created = await Promise.all(
    idle.map((threadId, i) =>
      runs.create(project, threadId, { assistantId, additionalMessages: [{ role: 'user', content: `more ${i}` }] }),
    ),
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
    (
      await t.ok(`query($t: ID!) { thread(id: $t) { messages(order: ASC) { nodes { text } } } }`, { t: threadId })
    ).thread.messages.nodes.map((m: any) => m.text);
  expect(await texts(busy)).toEqual(['thread 1', 'more 0']);
  expect(await texts(fresh)).toEqual(['Hello']);
});

it('creates one of two runs asked for together on one thread, and refuses the other as the thread is busy', async () => {
  const assistantId = await createAssistant(t);
  const { runs } = t.app.services;
  const threadId = await createThread(t);
  await runs.create('default', await createThread(t), { assistantId }); // the assistant is known: both reach one batch
  statements = [];
  counting = true;
  const outcomes = await Promise.allSettled([
    runs.create('default', threadId, { assistantId }),
    runs.create('default', threadId, { assistantId }),
  ]);
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

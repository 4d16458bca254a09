/**
 * Keyset pagination of a thread's runs (both orders, both directions, stable under inserts), and of a run's steps;
 * and the same lists as the Assistants API pages them (the services' listRuns and listSteps: object ids as cursors).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
let assistantId: string;
let threadId: string;
const ids: string[] = []; // creation order

const PAGE = `query($t: ID!, $first: Int, $after: String, $last: Int, $before: String, $order: SortOrder, $status: [RunStatus!]) {
  runs(threadId: $t, first: $first, after: $after, last: $last, before: $before, order: $order, status: $status) {
    edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`;

/** Adds a run that ends at once (a thread holds one active run at a time). */
async function addRun(): Promise<string> {
  const run = await createRun(t, threadId, { assistantId });
  await t.app.engine.transition(run.id, 'cancelled');
  ids.push(run.id);
  return run.id;
}

async function page(vars: Record<string, unknown>) {
  const data = await t.ok(PAGE, { t: threadId, ...vars });
  return {
    ids: data.runs.edges.map((e: any) => e.node.id) as string[],
    info: data.runs.pageInfo,
  };
}

/** Follows the cursors to the end, in one direction. */
async function walk(vars: Record<string, unknown>, backward = false, between?: () => Promise<void>) {
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 50; i++) {
    const p = await page(backward ? { ...vars, before: cursor } : { ...vars, after: cursor });
    seen.push(...(backward ? [...p.ids].reverse() : p.ids));
    if (!(backward ? p.info.hasPreviousPage : p.info.hasNextPage)) return seen;
    cursor = backward ? p.info.startCursor : p.info.endCursor;
    await between?.();
  }
  throw new Error('did not end');
}

beforeAll(async () => {
  t = await startTestApp();
  assistantId = await createAssistant(t);
  threadId = await createThread(t);
  for (let i = 0; i < 23; i++) await addRun();
});
afterAll(async () => {
  await t?.close();
});

describe('runs(threadId) pagination', () => {
  it('lists newest first by default, 20 to a page', async () => {
    const p = await page({});
    expect(p.ids).toEqual([...ids].reverse().slice(0, 20));
    expect(p.info).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
  });

  it('walks every run once, forward, in both orders', async () => {
    expect(await walk({ first: 5, order: 'ASC' })).toEqual(ids);
    expect(await walk({ first: 5, order: 'DESC' })).toEqual([...ids].reverse());
  });

  it('walks backward with last/before, in both orders', async () => {
    // Backward from the end of an ASC list visits newest to oldest.
    expect(await walk({ last: 4, order: 'ASC' }, true)).toEqual([...ids].reverse());
    expect(await walk({ last: 4, order: 'DESC' }, true)).toEqual(ids);
    const tail = await page({ last: 3, order: 'ASC' });
    expect(tail.ids).toEqual(ids.slice(-3));
    expect(tail.info).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
  });

  it('stays stable while runs are inserted between pages', async () => {
    const before = [...ids];
    const seen = await walk({ first: 4, order: 'ASC' }, false, async () => void (await addRun()));
    // Every run that existed when the walk began is seen exactly once, in order.
    expect(seen.slice(0, before.length)).toEqual(before);
    expect(new Set(seen).size).toBe(seen.length);
    const beforeDesc = [...ids];
    const desc = await walk({ first: 4, order: 'DESC' }, false, async () => void (await addRun()));
    // Newer runs land ahead of the first page of a DESC walk: the walk sees exactly the old ones.
    expect(desc).toEqual([...beforeDesc].reverse());
  });

  it('filters by status', async () => {
    const run = await createRun(t, threadId, { assistantId });
    const p = await page({ status: ['QUEUED', 'IN_PROGRESS'] });
    expect(p.ids).toEqual([run.id]);
    await t.app.engine.transition(run.id, 'cancelled');
    ids.push(run.id);
    expect((await page({ status: ['QUEUED'] })).ids).toEqual([]);
  });

  it('rejects bad page arguments with BAD_USER_INPUT', async () => {
    for (const vars of [{ first: 0 }, { first: 101 }, { last: 0 }, { first: 2, last: 2 }, { after: 'not-a-cursor' }, { before: 'eHl6' }]) {
      const res = await t.gql(PAGE, { t: threadId, ...vars });
      expect(res.errors?.[0]?.extensions?.code, JSON.stringify(vars)).toBe('BAD_USER_INPUT');
    }
    const res = await t.gql(PAGE, { t: 'thread_missing' });
    expect(res.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('pages Thread.runs and Thread.messages the same way', async () => {
    const data = await t.ok(
      `query($t: ID!) { thread(id: $t) { runs(first: 2, order: ASC) { nodes { id } pageInfo { hasNextPage } } messages(first: 1) { nodes { text } pageInfo { hasNextPage } } } }`,
      { t: threadId },
    );
    expect(data.thread.runs.nodes.map((n: any) => n.id)).toEqual(ids.slice(0, 2));
    expect(data.thread.runs.pageInfo.hasNextPage).toBe(true);
    expect(data.thread.messages).toEqual({ nodes: [{ text: 'Hello' }], pageInfo: { hasNextPage: false } });
  });
});

describe("runs as the Assistants API lists them (the service's listRuns)", () => {
  const list = (args: Record<string, unknown>, projectId = 'default', thread = threadId) =>
    t.app.services.runs.listRuns(projectId, thread, args).then((p) => ({ rows: p.rows.map((r) => r.id), hasMore: p.hasMore }));

  it('walks every run once with `after`, newest first by default, in pages of `limit`', async () => {
    const all = [...ids];
    for (const order of ['desc', 'asc'] as const) {
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await list({ limit: 4, order, after });
        seen.push(...page.rows);
        if (!page.hasMore) break;
        after = page.rows.at(-1);
      }
      expect(seen).toEqual(order === 'asc' ? all : [...all].reverse());
    }
    expect((await list({})).rows).toEqual([...all].reverse().slice(0, 20));
  });

  it('walks back with `before`: each page the nearest runs before it, in order, until hasMore is false', async () => {
    const all = [...ids];
    const seen: string[] = [];
    let before = all.at(-1);
    for (;;) {
      const page = await list({ limit: 5, order: 'asc', before });
      seen.unshift(...page.rows);
      if (!page.hasMore) break;
      before = page.rows[0];
    }
    expect(seen).toEqual(all.slice(0, -1));
    expect(await list({ limit: 2, before: all[0] })).toEqual({ rows: [all[2], all[1]], hasMore: true });
    expect(await list({ limit: 2, after: all[3], before: all[0] })).toEqual({ rows: [all[2], all[1]], hasMore: false });
  });

  it('refuses a limit out of 1-100 and a cursor that is no run id with BAD_USER_INPUT, and a missing or foreign thread with NOT_FOUND', async () => {
    for (const args of [{ limit: 0 }, { limit: 101 }, { after: 'not-an-id' }, { before: 'step_01ABC' }]) {
      await expect(list(args), JSON.stringify(args)).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    }
    await expect(list({}, 'default', 'thread_missing')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(list({}, 'another-project')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(threadId) });
  });
});

describe('Run.steps pagination', () => {
  const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };
  let threadId = '';
  let runId = '';
  let steps: string[] = [];

  beforeAll(async () => {
    threadId = await createThread(t);
    runId = (await createRun(t, threadId, { assistantId })).id;
    // Three TOOL_CALLS steps: each round of tool calls is a step.
    for (let round = 0; round < 3; round++) {
      await t.app.engine.transition(runId, 'in_progress');
      await t.app.engine.requireAction(runId, [CALL]);
      if (round < 2) {
        await t.ok(
          `mutation($t: ID!, $r: ID!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: [{ toolCallId: "call_1", output: "ok" }]) { id } }`,
          {
            t: threadId,
            r: runId,
          },
        );
      }
    }
    await t.app.engine.transition(runId, 'cancelled');
    steps = (await t.app.engine.steps(runId)).map((s) => s.id);
    expect(steps).toHaveLength(3);
  });

  it('pages each way, a page after a cursor beside first pages, and a bad cursor fails its own field alone', async () => {
    const run = (alias: string, args: string) =>
      `${alias}: run(threadId: $t, runId: $r) { steps(${args}) { nodes { id } pageInfo { hasNextPage hasPreviousPage } } }`;
    const first = await t.ok(`query($t: ID!, $r: ID!) { ${run('a', 'first: 2')} }`, { t: threadId, r: runId });
    expect(first.a.steps).toEqual({
      nodes: steps.slice(0, 2).map((id) => ({ id })),
      pageInfo: { hasNextPage: true, hasPreviousPage: false },
    });
    const cursor = Buffer.from(`k1:${steps[0]}`).toString('base64url');
    const res = await t.gql(
      `query($t: ID!, $r: ID!, $c: String!) { ${run('a', 'first: 1')} ${run('b', 'first: 1, after: $c')} ${run('c', 'order: DESC')}
        ${run('d', 'last: 1, before: $c, order: DESC')} ${run('e', 'after: "not-a-cursor"')} }`,
      { t: threadId, r: runId, c: cursor },
    );
    expect(res.data).toEqual({
      a: { steps: { nodes: [{ id: steps[0] }], pageInfo: { hasNextPage: true, hasPreviousPage: false } } },
      b: { steps: { nodes: [{ id: steps[1] }], pageInfo: { hasNextPage: true, hasPreviousPage: true } } },
      c: { steps: { nodes: [...steps].reverse().map((id) => ({ id })), pageInfo: { hasNextPage: false, hasPreviousPage: false } } },
      d: { steps: { nodes: [{ id: steps[1] }], pageInfo: { hasNextPage: true, hasPreviousPage: true } } },
      e: null,
    });
    expect(res.errors?.map((e) => [e.path, e.extensions?.['code']])).toEqual([[['e', 'steps'], 'BAD_USER_INPUT']]);
  });
  it("lists as the Assistants API does (the service's listSteps): newest first by default, after, before, NOT_FOUND for another run's thread", async () => {
    const list = (args: Record<string, unknown>, projectId = 'default', thread = threadId, run = runId) =>
      t.app.services.runs.listSteps(projectId, thread, run, args).then((p) => ({ rows: p.rows.map((r) => r.id), hasMore: p.hasMore }));
    expect(await list({})).toEqual({ rows: [...steps].reverse(), hasMore: false });
    expect(await list({ limit: 1, after: steps[2] })).toEqual({ rows: [steps[1]], hasMore: true });
    expect(await list({ order: 'asc', before: steps[2] })).toEqual({ rows: [steps[0], steps[1]], hasMore: false });
    expect(await list({ order: 'asc', limit: 1, before: steps[2] })).toEqual({ rows: [steps[1]], hasMore: true });
    await expect(list({ limit: 101 })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(list({}, 'default', await createThread(t))).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining(runId),
    });
    await expect(list({}, 'another-project')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(threadId) });
  });
});

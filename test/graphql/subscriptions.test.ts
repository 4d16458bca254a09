/** Live status over graphql-ws: a real client on a real port. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssistant, createRun, createThread, newRun } from '../support/fixtures.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const RUN_STATUS = `subscription($runId: ID!) { runStatusChanged(runId: $runId) {
  runId threadId version previousStatus status at run { id status version requiredAction { type } } } }`;
const THREAD_RUNS = `subscription($threadId: ID!) { threadRunsChanged(threadId: $threadId) { runId version previousStatus status } }`;
const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };

describe('runStatusChanged', () => {
  it('sends the current state, then every transition in order, then completes at a terminal status', async () => {
    const { threadId, runId } = await newRun(t);
    const sub = collect(t.wsClient(), RUN_STATUS, { runId });
    await eventually(() => sub.events.length === 1);
    expect(sub.events[0]!.data!.runStatusChanged).toMatchObject({
      runId,
      threadId,
      version: 1,
      previousStatus: null,
      status: 'QUEUED',
      run: { id: runId, status: 'QUEUED', version: 1 },
    });

    const engine = t.app.engine;
    await engine.transition(runId, 'in_progress');
    await engine.requireAction(runId, [CALL]);
    await t.ok(
      `mutation($t: ID!, $r: ID!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: [{ toolCallId: "call_1", output: "ok" }]) { id } }`,
      { t: threadId, r: runId },
    );
    await engine.transition(runId, 'in_progress');
    await engine.transition(runId, 'completed');
    await sub.done; // completes by itself after COMPLETED

    const events = sub.events.map((e) => e.data!.runStatusChanged);
    expect(events.map((e: any) => [e.version, e.previousStatus, e.status])).toEqual([
      [1, null, 'QUEUED'],
      [2, 'QUEUED', 'IN_PROGRESS'],
      [3, 'IN_PROGRESS', 'REQUIRES_ACTION'],
      [4, 'REQUIRES_ACTION', 'QUEUED'],
      [5, 'QUEUED', 'IN_PROGRESS'],
      [6, 'IN_PROGRESS', 'COMPLETED'],
    ]);
    // The first event carries the run as read for it; later ones the run as it is when
    // delivered, never older than the event.
    expect(events[0].run).toMatchObject({ status: 'QUEUED', version: 1 });
    for (const e of events) expect(e.run.version).toBeGreaterThanOrEqual(e.version);
    expect(events.at(-1).run).toMatchObject({ status: 'COMPLETED', version: 6 });
  });

  it("reads the run's steps as they are at each event", async () => {
    const { runId } = await newRun(t);
    const sub = collect(
      t.wsClient(),
      `subscription($runId: ID!) { runStatusChanged(runId: $runId) { status run { steps { nodes { status } } } } }`,
      { runId },
    );
    const engine = t.app.engine;
    await eventually(() => sub.events.length === 1);
    await engine.transition(runId, 'in_progress');
    await eventually(() => sub.events.length === 2);
    await engine.requireAction(runId, [CALL]);
    await eventually(() => sub.events.length === 3);
    await engine.transition(runId, 'cancelled');
    await sub.done;
    expect(sub.events.map((e) => [e.data!.runStatusChanged.status, e.data!.runStatusChanged.run.steps.nodes])).toEqual([
      ['QUEUED', []],
      ['IN_PROGRESS', []],
      ['REQUIRES_ACTION', [{ status: 'IN_PROGRESS' }]],
      ['CANCELLED', [{ status: 'CANCELLED' }]],
    ]);
  });

  it('delivers a burst of concurrent transitions once each, in version order', async () => {
    const { runId } = await newRun(t);
    const sub = collect(t.wsClient(), RUN_STATUS, { runId });
    await eventually(() => sub.events.length === 1);
    const engine = t.app.engine;
    await engine.transition(runId, 'in_progress');
    // The cancel and the engine's completion race; whichever order they commit, the
    // subscriber sees a gapless version sequence.
    await Promise.all([engine.transition(runId, 'cancelling'), engine.transition(runId, 'completed')]);
    await engine.transition(runId, 'cancelled'); // no-op if already terminal
    await sub.done;
    const versions = sub.events.map((e) => e.data!.runStatusChanged.version);
    expect(versions).toEqual(versions.map((_, i) => i + 1));
    expect(['COMPLETED', 'CANCELLED']).toContain(sub.events.at(-1)!.data!.runStatusChanged.status);
  });

  it('sends only the current state for a run that already ended', async () => {
    const { runId } = await newRun(t);
    await t.app.engine.transition(runId, 'cancelled');
    const sub = collect(t.wsClient(), RUN_STATUS, { runId });
    await sub.done;
    expect(sub.events.map((e) => e.data!.runStatusChanged.status)).toEqual(['CANCELLED']);
    // The stream ended by itself: nothing of it stays registered on the server.
    await eventually(() => t.app.services.bus.subscriberCount(`run:${runId}`) === 0, 2000);
  });

  it('fails a syntax error alone, leaving the socket and its other subscriptions alive', async () => {
    const { runId } = await newRun(t);
    const client = t.wsClient();
    const live = collect(client, RUN_STATUS, { runId });
    await eventually(() => live.events.length === 1);
    const broken = await collect(client, 'subscription { runStatusChanged(', {}).done.then(
      () => undefined,
      (errors: any[]) => errors,
    );
    expect(broken?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    await t.app.engine.transition(runId, 'cancelled');
    await live.done;
    expect(live.events.map((e) => e.data!.runStatusChanged.status)).toEqual(['QUEUED', 'CANCELLED']);
  });

  it('fails with NOT_FOUND for a run that does not exist', async () => {
    const sub = collect(t.wsClient(), RUN_STATUS, { runId: 'run_missing' });
    await sub.done;
    expect(sub.events).toHaveLength(1);
    expect(sub.events[0]!.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('reports bad variables with BAD_USER_INPUT on the websocket too', async () => {
    const client = t.wsClient();
    const result = await new Promise<unknown>((resolve) =>
      client.subscribe({ query: RUN_STATUS, variables: { runId: 42.5 } }, { next: resolve, error: resolve, complete: () => {} }),
    );
    expect(JSON.stringify(result)).toMatch(/BAD_USER_INPUT/);
  });
});

describe('unsubscribing', () => {
  it('frees the server side at once, even while no event is pending', async () => {
    const { runId, threadId } = await newRun(t);
    const client = t.wsClient();
    const one = collect(client, RUN_STATUS, { runId });
    const all = collect(client, THREAD_RUNS, { threadId });
    await eventually(() => t.app.services.bus.subscriberCount(`run:${runId}`) === 1);
    await eventually(() => t.app.services.bus.subscriberCount(`thread:${threadId}`) === 1);
    one.stop();
    all.stop();
    await eventually(() => t.app.services.bus.subscriberCount(`run:${runId}`) === 0, 2000);
    await eventually(() => t.app.services.bus.subscriberCount(`thread:${threadId}`) === 0, 2000);
  });
});

describe('threadRunsChanged', () => {
  it("delivers every transition of the thread's runs, in order", async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const sub = collect(t.wsClient(), THREAD_RUNS, { threadId });
    // The subscription is live once the server has registered it on the bus.
    await eventually(() => t.app.services.bus.subscriberCount(`thread:${threadId}`) === 1);

    const first = await createRun(t, threadId, { assistantId });
    await t.app.engine.transition(first.id, 'cancelled');
    const second = await createRun(t, threadId, { assistantId });
    await t.app.engine.transition(second.id, 'in_progress');

    await eventually(() => sub.events.length === 4);
    sub.stop();
    expect(sub.events.map((e) => e.data!.threadRunsChanged)).toEqual([
      { runId: first.id, version: 1, previousStatus: null, status: 'QUEUED' },
      { runId: first.id, version: 2, previousStatus: 'QUEUED', status: 'CANCELLED' },
      { runId: second.id, version: 1, previousStatus: null, status: 'QUEUED' },
      { runId: second.id, version: 2, previousStatus: 'QUEUED', status: 'IN_PROGRESS' },
    ]);
  });

  it('fails with NOT_FOUND for a thread that does not exist', async () => {
    const sub = collect(t.wsClient(), THREAD_RUNS, { threadId: 'thread_missing' });
    await sub.done;
    expect(sub.events[0]!.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });
});

/**
 * The lifecycle against a real database: stamps and history of each transition, and
 * concurrent callers racing on one run. The tests move runs by hand, through the service
 * the engine uses, with no worker running.
 */
import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEvents, runSteps } from '../../src/db/schema.js';
import { canTransition, type RunStatus } from '../../src/domain/run-lifecycle.js';
import { newRun, RUN_FIELDS } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":"Paris"}' } };

async function history(runId: string) {
  return t.app.database.db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(asc(runEvents.version));
}

/** Every event follows the one before it and is allowed by the table. */
async function expectLegalPath(runId: string) {
  const events = await history(runId);
  expect(events[0]).toMatchObject({ version: 1, fromStatus: null, toStatus: 'queued' });
  for (let i = 1; i < events.length; i++) {
    const prev = events[i - 1]!;
    const e = events[i]!;
    expect(e.version).toBe(prev.version + 1);
    expect(e.fromStatus).toBe(prev.toStatus);
    expect(canTransition(e.fromStatus as RunStatus, e.toStatus)).toBe(true);
  }
  return events;
}

async function waitingRun() {
  const { threadId, runId } = await newRun(t);
  await t.app.engine.transition(runId, 'in_progress');
  await t.app.engine.requireAction(runId, [CALL]);
  return { threadId, runId };
}

const cancel = (threadId: string, runId: string) =>
  t.gql(`mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }`, { t: threadId, r: runId });
const submit = (threadId: string, runId: string) =>
  t.gql(`mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { status } }`, {
    t: threadId,
    r: runId,
    o: [{ toolCallId: 'call_1', output: 'sunny' }],
  });

describe('a transition', () => {
  it('bumps the version, stamps its timestamp and records the event', async () => {
    const { threadId, runId, run } = await newRun(t);
    expect(run).toMatchObject({ status: 'QUEUED', version: 1, object: 'thread.run', startedAt: null });
    expect(run.expiresAt).toBe(run.createdAt + 600);

    const started = await t.app.engine.transition(runId, 'in_progress');
    expect(started).toMatchObject({ status: 'in_progress', version: 2, previousStatus: 'queued' });
    expect(started!.startedAt).toBeGreaterThanOrEqual(run.createdAt);

    await t.app.engine.requireAction(runId, [CALL]);
    await submit(threadId, runId);
    const again = await t.app.engine.transition(runId, 'in_progress');
    expect(again!.startedAt).toBe(started!.startedAt); // startedAt is the first start only

    const done = await t.app.engine.transition(runId, 'completed', {
      usage: { promptTokens: 3, completionTokens: 4, totalTokens: 7 },
    });
    expect(done).toMatchObject({ status: 'completed', version: 6, expiresAt: null, requiredAction: null });
    expect(done!.completedAt).toBeGreaterThanOrEqual(run.createdAt);

    const events = await expectLegalPath(runId);
    expect(events.map((e) => e.toStatus)).toEqual(['queued', 'in_progress', 'requires_action', 'queued', 'in_progress', 'completed']);
  });

  it('refuses an illegal move and leaves the run untouched', async () => {
    const { runId } = await newRun(t);
    expect(await t.app.engine.transition(runId, 'completed')).toBeUndefined();
    expect(
      await t.app.engine.transition(runId, 'requires_action', {
        requiredAction: { type: 'submit_tool_outputs', submitToolOutputs: { toolCalls: [CALL] } },
      }),
    ).toBeUndefined();
    const events = await history(runId);
    expect(events).toHaveLength(1);
    expect((await t.app.engine.getById(runId))!.version).toBe(1);
  });

  it('ends the open tool-calls step with the run', async () => {
    const { runId } = await waitingRun();
    await t.app.engine.transition(runId, 'expired');
    const steps = await t.app.database.db.select().from(runSteps).where(eq(runSteps.runId, runId));
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ type: 'tool_calls', status: 'expired' });
    expect(steps[0]!.expiredAt).not.toBeNull();
  });

  it('writes submitted outputs into the tool-calls step', async () => {
    const { threadId, runId } = await waitingRun();
    expect((await submit(threadId, runId)).data).toEqual({ submitToolOutputs: { status: 'QUEUED' } });
    const [step] = await t.app.database.db.select().from(runSteps).where(eq(runSteps.runId, runId));
    expect(step).toMatchObject({ status: 'completed' });
    expect(step!.stepDetails).toEqual({
      type: 'tool_calls',
      toolCalls: [{ ...CALL, function: { ...CALL.function, output: 'sunny' } }],
    });
  });
});

describe('50 concurrent callers on one run', () => {
  const N = 50;

  it('cancel: exactly one cancels, the rest get INVALID_RUN_STATE', async () => {
    const { threadId, runId } = await waitingRun();
    const results = await Promise.all(Array.from({ length: N }, () => cancel(threadId, runId)));
    const wins = results.filter((r) => r.data?.cancelRun?.status === 'CANCELLED');
    const refusals = results.filter((r) => r.errors?.[0]?.extensions?.code === 'INVALID_RUN_STATE');
    expect(wins).toHaveLength(1);
    expect(refusals).toHaveLength(N - 1);
    expect(refusals[0]!.errors![0]!.message).toBe("Cannot cancel run with status 'cancelled'.");
    const events = await expectLegalPath(runId);
    expect(events.at(-1)!.toStatus).toBe('cancelled');
  });

  it('submitToolOutputs: exactly one is accepted', async () => {
    const { threadId, runId } = await waitingRun();
    const results = await Promise.all(Array.from({ length: N }, () => submit(threadId, runId)));
    expect(results.filter((r) => r.data?.submitToolOutputs?.status === 'QUEUED')).toHaveLength(1);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === 'INVALID_RUN_STATE')).toHaveLength(N - 1);
    const events = await expectLegalPath(runId);
    expect(events.filter((e) => e.fromStatus === 'requires_action' && e.toStatus === 'queued')).toHaveLength(1);
  });

  it('expire: exactly one expires it', async () => {
    const { runId } = await waitingRun();
    const results = await Promise.all(Array.from({ length: N }, () => t.app.engine.transition(runId, 'expired')));
    expect(results.filter(Boolean)).toHaveLength(1);
    const events = await expectLegalPath(runId);
    expect(events.at(-1)!.toStatus).toBe('expired');
  });

  it('a mix of cancel, submit and expire: a legal path, one change per success', async () => {
    const { threadId, runId } = await waitingRun();
    const calls = Array.from({ length: N }, (_, i) =>
      i % 3 === 0
        ? cancel(threadId, runId).then((r) => !r.errors)
        : i % 3 === 1
          ? submit(threadId, runId).then((r) => !r.errors)
          : t.app.engine.transition(runId, 'expired').then(Boolean),
    );
    const successes = (await Promise.all(calls)).filter(Boolean).length;
    const events = await expectLegalPath(runId);
    // Past queued -> in_progress -> requires_action, each success made exactly one change.
    expect(events.length - 3).toBe(successes);
    expect(successes).toBeGreaterThanOrEqual(1);
    const final = await t.ok(`query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { ${RUN_FIELDS} } }`, { t: threadId, r: runId });
    expect(['CANCELLED', 'EXPIRED']).toContain(final.run.status);
    expect(final.run.version).toBe(events.length);
  });
});

/** Expiry and cancellation with the worker running, end to end. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { unixNow } from '../../src/app.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
let expiring: TestApp;
let patient: TestApp;
/**
 * The expiring app's clock, moved on by the specs: a run expires when the clock passes its
 * expiresAt, never because a busy machine was slow to reach the state a spec expires.
 */
let clockOffset = 0;
const EXPIRES_AFTER = 60;
const passExpiry = () => (clockOffset += EXPIRES_AFTER + 1);
beforeAll(async () => {
  // One run at a time, so a second run stays queued while the first works.
  [expiring, patient] = await Promise.all([
    startTestApp({
      worker: true,
      runExpiresAfterSeconds: EXPIRES_AFTER,
      workerConcurrency: 1,
      clock: () => unixNow() + clockOffset,
    }),
    startTestApp({ worker: true, workerConcurrency: 1 }),
  ]);
});
afterAll(async () => {
  await Promise.all([expiring?.close(), patient?.close()]);
});

const RUN = `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status createdAt expiresAt cancelledAt
  steps { nodes { type status } } } }`;

async function start(message: string) {
  const assistantId = await createAssistant(t);
  const threadId = await createThread(t, message);
  const run = await createRun(t, threadId, { assistantId });
  const read = async () => (await t.ok(RUN, { t: threadId, r: run.id })).run;
  const waitFor = async (status: string) => {
    let last: any;
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline) {
      last = await read();
      if (last.status === status) return last;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`run stayed ${last?.status}, never ${status}`);
  };
  /** Every status the run went through, from its history (a busy machine may skip past a poll). */
  const history = async () => (await t.app.services.history.eventsAfter(run.id, 0)).map((e) => e.status);
  return { threadId, runId: run.id as string, read, waitFor, history };
}

const cancel = (threadId: string, runId: string) =>
  t.ok(`mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }`, { t: threadId, r: runId });

describe('expiry (a run expires when the clock passes its expiresAt)', () => {
  beforeAll(() => {
    t = expiring;
  });

  it('expires a run left waiting for tool outputs, and its open step', async () => {
    const run = await start('call get_weather {}');
    const waiting = await run.waitFor('REQUIRES_ACTION');
    expect(waiting.expiresAt - waiting.createdAt).toBe(EXPIRES_AFTER);
    passExpiry();
    const expired = await run.waitFor('EXPIRED');
    expect(await run.history()).toEqual(['queued', 'in_progress', 'requires_action', 'expired']);
    expect(expired.expiresAt).toBeNull();
    expect(expired.steps.nodes).toEqual([{ type: 'TOOL_CALLS', status: 'EXPIRED' }]);
  });

  it('still sweeps while other runs keep the worker busy', async () => {
    const waiting = await start('call get_weather {}');
    await waiting.waitFor('REQUIRES_ACTION');
    // Runs finishing every 50 ms wake the worker again and again meanwhile.
    let busy = true;
    const traffic = (async () => {
      while (busy) {
        await start('hi');
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      passExpiry();
      await waiting.waitFor('EXPIRED');
    } finally {
      busy = false;
      await traffic;
    }
    expect(await waiting.history()).toEqual(['queued', 'in_progress', 'requires_action', 'expired']);
  });

  it('expires a run that runs too long, aborting its model call', async () => {
    const run = await start('sleep 30000');
    await run.waitFor('IN_PROGRESS');
    passExpiry();
    await run.waitFor('EXPIRED');
    // The worker let go at once: the next run is picked up without waiting 30 s.
    const next = await start('hi');
    await next.waitFor('COMPLETED');
  });
});

describe('cancel', () => {
  beforeAll(() => {
    t = patient;
  });

  it('cancels a queued run at once', async () => {
    const busy = await start('sleep 30000'); // takes the only worker slot
    await busy.waitFor('IN_PROGRESS');
    const queued = await start('hello');
    expect((await queued.read()).status).toBe('QUEUED');
    expect((await cancel(queued.threadId, queued.runId)).cancelRun.status).toBe('CANCELLED');
    expect((await cancel(busy.threadId, busy.runId)).cancelRun.status).toBe('CANCELLING');
    await busy.waitFor('CANCELLED');
  });

  it('cancels a run waiting for tool outputs, and its open step', async () => {
    const run = await start('call get_weather {}');
    await run.waitFor('REQUIRES_ACTION');
    expect((await cancel(run.threadId, run.runId)).cancelRun.status).toBe('CANCELLED');
    expect((await run.read()).steps.nodes).toEqual([{ type: 'TOOL_CALLS', status: 'CANCELLED' }]);
  });
});

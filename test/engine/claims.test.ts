/**
 * The engine's claims, without a running worker: each test claims by hand on a database
 * where its run is the only queued one.
 */
import { eq, sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runSteps } from '../../src/db/schema.js';
import { newRun } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeEach(async () => {
  t = await startTestApp();
});
afterEach(async () => {
  await t?.close();
});

const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };

describe('a cancel racing a model that already answered', () => {
  it('lets the answer stand: cancelling -> completed, with the message', async () => {
    const { runId } = await newRun(t);
    const [claimed] = await t.app.engine.claim('worker_test', 1, 30);
    expect(claimed!.id).toBe(runId);
    await t.app.services.runs.cancel('default', claimed!.threadId, runId); // -> cancelling
    const usage = { promptTokens: 1, completionTokens: 1, totalTokens: 2 };
    const done = await t.app.engine.finishWithMessage(claimed!, claimed!.leaseToken!, { text: 'done', usage, truncated: false }, usage);
    expect(done).toMatchObject({ status: 'completed', previousStatus: 'cancelling', workerId: null, leaseToken: null });
  });

  it('refuses the writes of a worker whose claim was taken over', async () => {
    const { runId } = await newRun(t);
    const [claimed] = await t.app.engine.claim('worker_old', 1, 30);
    // The claim is taken over (as after a lapsed lease): a new token.
    await t.app.database.db.execute(sql`update runs set lease_expires_at = now() - interval '1 minute' where id = ${runId}`);
    const [taken] = await t.app.engine.takeOver('worker_new', 1, 30);
    expect(taken!.leaseToken).not.toBe(claimed!.leaseToken);
    const usage = { promptTokens: 1, completionTokens: 1, totalTokens: 2 };
    expect(
      await t.app.engine.finishWithMessage(claimed!, claimed!.leaseToken!, { text: 'stale', usage, truncated: false }, usage),
    ).toBeUndefined();
    expect(await t.app.engine.requireAction(runId, [CALL], { leaseToken: claimed!.leaseToken! })).toBeUndefined();
    const steps = await t.app.database.db.select().from(runSteps).where(eq(runSteps.runId, runId));
    expect(steps).toEqual([]);
    expect(
      await t.app.engine.finishWithMessage(taken!, taken!.leaseToken!, { text: 'fresh', usage, truncated: false }, usage),
    ).toMatchObject({ status: 'completed' });
  });
});

describe('claiming queued runs', () => {
  // The race this guards against needs concurrent connections: on PostgreSQL, the old
  // 'id in (select ... limit n for update skip locked)' claim failed it.
  it('never takes more runs than asked, nor a run twice, however many claim at once', async () => {
    const { assistants, threads, runs } = t.app.services;
    const engine = t.app.engine;
    const assistant = await assistants.create('default', { model: 'scripted' });
    const queued = new Set<string>();
    for (let i = 0; i < 120; i++) {
      const thread = await threads.create('default', {});
      queued.add((await runs.create('default', thread.id, { assistantId: assistant.id })).id);
    }
    const claimed: string[] = [];
    for (let round = 0; claimed.length < queued.size && round < 50; round++) {
      const batches = await Promise.all(['w1', 'w2', 'w3', 'w4'].map((w) => engine.claim(w, 7, 30)));
      for (const batch of batches) {
        expect(batch.length).toBeLessThanOrEqual(7);
        claimed.push(...batch.map((r) => r.id));
      }
    }
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(new Set(claimed)).toEqual(queued);
  });
});

describe('projects taking turns', () => {
  /** `count` queued runs of this project, oldest first, each on its own thread. */
  async function queue(projectId: string, count: number): Promise<string[]> {
    const { assistants, threads, runs } = t.app.services;
    const assistant = await assistants.create(projectId, { model: 'scripted' });
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const thread = await threads.create(projectId, {});
      ids.push((await runs.create(projectId, thread.id, { assistantId: assistant.id })).id);
    }
    return ids;
  }
  const claimOne = async () => (await t.app.engine.claim('worker_test', 1, 30))[0];

  it("takes one project's runs oldest first", async () => {
    const queued = await queue('projectA', 6);
    const claimed = await t.app.engine.claim('worker_test', 4, 30);
    expect(claimed.map((r) => r.id)).toEqual(queued.slice(0, 4));
  });

  it("gives the next free slot to a project with nothing running, however long another's queue", async () => {
    const flood = await queue('projectA', 30);
    // A worker of 4 slots is full of the flood.
    expect((await t.app.engine.claim('worker_test', 4, 30)).map((r) => r.id)).toEqual(flood.slice(0, 4));
    const [other] = await queue('projectB', 1);
    expect((await claimOne())!.id).toBe(other);
    // Then they take turns, one run at a time or several at once.
    await queue('projectB', 6);
    const order = [];
    for (let i = 0; i < 4; i++) order.push((await claimOne())!.projectId);
    expect(order).toEqual(['projectA', 'projectB', 'projectA', 'projectB']);
    const together = await t.app.engine.claim('worker_test', 4, 30);
    expect(together.map((r) => r.projectId).sort()).toEqual(['projectA', 'projectA', 'projectB', 'projectB']);
    // Each project's own runs still go oldest first.
    const a = [...order.entries()].filter(([, p]) => p === 'projectA').length;
    expect(together.filter((r) => r.projectId === 'projectA').map((r) => r.id)).toEqual(flood.slice(4 + a, 6 + a));
  });
});

describe('finishing runs', () => {
  it('commits answers that arrive together in one statement per outcome, each run with its own message, step and event', async () => {
    const seen: string[] = [];
    const app = await startTestApp({ onQuery: (s) => void seen.push(s) });
    try {
      const { assistants, threads, runs } = app.app.services;
      const engine = app.app.engine;
      const assistant = await assistants.create('default', { model: 'scripted' });
      for (let i = 0; i < 10; i++) {
        const thread = await threads.create('default', {});
        await runs.create('default', thread.id, { assistantId: assistant.id });
      }
      const claimed = await engine.claim('w1', 10, 30);
      expect(claimed).toHaveLength(10);
      const [truncated, stale, ...rest] = claimed;
      // Every event these runs make, as the transport delivers them to this process.
      const events = claimed.map((run) => app.app.services.bus.subscribe(`run:${run.id}`));
      seen.length = 0;
      const usage = { promptTokens: 1, completionTokens: 2, totalTokens: 3 };
      const answer = (run: (typeof claimed)[number], leaseToken = run.leaseToken!) =>
        engine.finishWithMessage(run, leaseToken, { text: `answer ${run.id}`, usage, truncated: run === truncated }, usage);
      const done = await Promise.all([
        answer(truncated!),
        answer(stale!, '00000000-0000-4000-8000-000000000000'), // a claim that is not the run's
        ...rest.map((run) => answer(run)),
      ]);

      // One statement per outcome moved the runs and wrote their messages, steps and events
      // (with Redis fan-out, the outbox relay's own statements come besides).
      const finishing = seen.filter((statement) => !statement.includes('"event_outbox"'));
      expect(finishing).toHaveLength(2);
      for (const statement of finishing) {
        for (const part of ['update "runs"', 'insert into "messages"', 'insert into "run_steps"', 'insert into "run_events"']) {
          expect(statement).toContain(part);
        }
      }
      // Each caller gets its own run back; the stale claim gets nothing, and writes nothing.
      expect(done.map((r) => r && { id: r.id, status: r.status })).toEqual([
        { id: truncated!.id, status: 'incomplete' },
        undefined,
        ...rest.map((r) => ({ id: r.id, status: 'completed' })),
      ]);
      expect(await engine.steps(stale!.id)).toEqual([]);
      expect((await engine.threadMessages(stale!.threadId)).filter((m) => m.runId === stale!.id)).toEqual([]);
      for (const run of [truncated!, ...rest]) {
        const [step, ...more] = await engine.steps(run.id);
        expect(more).toEqual([]);
        expect(step).toMatchObject({ type: 'message_creation', status: 'completed', usage });
        const messages = (await engine.threadMessages(run.threadId)).filter((m) => m.runId === run.id);
        expect(messages.map((m) => m.content)).toEqual([`answer ${run.id}`]);
        expect(step!.stepDetails).toEqual({ type: 'message_creation', messageCreation: { messageId: messages[0]!.id } });
      }
      // The notification carries each moved run's event as the table has it.
      for (const [i, run] of claimed.entries()) {
        if (run === stale) continue;
        // (The claim's own event may still be on its way: skip it.)
        let { value } = await events[i]!.next();
        if (value?.kind === 'event' && value.event.version === 2) ({ value } = await events[i]!.next());
        expect(value).toEqual({
          kind: 'event',
          event: expect.objectContaining({
            runId: run.id,
            threadId: run.threadId,
            version: 3,
            previousStatus: 'in_progress',
            status: run === truncated ? 'incomplete' : 'completed',
          }),
        });
      }
      for (const queue of events) queue.close();
    } finally {
      await app.close();
    }
  });
});

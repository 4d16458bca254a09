/**
 * Durability: a worker killed mid-run loses nothing and records nothing twice.
 * (PostgreSQL: it needs two processes on one database.)
 */
import { and, eq } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { messages, runEvents, runSteps } from '../../src/db/schema.js';
import { buildAppOn, queueRun, scratchDatabase, spawnWorker, waitUntil, type Leftovers } from '../support/queued-runs.js';

const leftovers: Leftovers = [];
afterEach(async () => {
  for (const dispose of leftovers.splice(0).reverse()) await dispose();
});

describe('a worker killed with SIGKILL mid-run (PostgreSQL: needs two processes)', () => {
  it('is taken over after its lease lapses; no message, step or tool call recorded twice', async () => {
    const db = await scratchDatabase(leftovers);
    const gateway = await buildAppOn(leftovers, db);
    // Half the runs answer, half call a tool; both work 3 s first, so the kill lands mid-call.
    const runs = await Promise.all(
      Array.from({ length: 6 }, (_, i) => queueRun(gateway, i % 2 ? 'sleep 3000\ncall get_weather {"city":"Oslo"}' : 'sleep 3000')),
    );
    const ids = runs.map((r) => r.id);
    const child = spawnWorker(leftovers, db.url!, { LEASE_SECONDS: '2', WORKER_CONCURRENCY: '10' });
    const statuses = async () => Promise.all(ids.map(async (id) => (await gateway.engine.getById(id))!.status));
    await waitUntil(async () => (await statuses()).every((s) => s === 'in_progress'), 20_000, 'the child to claim every run');

    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    // A second worker finds the lapsed leases (2 s) and finishes the runs.
    await buildAppOn(leftovers, db, { worker: { leaseSeconds: 2, pollMs: 200 } });
    await waitUntil(async () => (await statuses()).every((s) => s === 'completed' || s === 'requires_action'), 30_000, 'the takeover');

    const sql_ = gateway.database.db;
    for (const [i, run] of runs.entries()) {
      const assistantMessages = await sql_
        .select()
        .from(messages)
        .where(and(eq(messages.threadId, run.threadId), eq(messages.role, 'assistant')));
      const steps = await sql_.select().from(runSteps).where(eq(runSteps.runId, run.id));
      const starts = await sql_
        .select()
        .from(runEvents)
        .where(and(eq(runEvents.runId, run.id), eq(runEvents.toStatus, 'in_progress')));
      expect(starts).toHaveLength(1); // taken over, not started again
      if (i % 2) {
        expect(assistantMessages).toHaveLength(0);
        expect(steps).toHaveLength(1);
        expect(steps[0]!.stepDetails).toMatchObject({ type: 'tool_calls' });
        expect((steps[0]!.stepDetails as { toolCalls: unknown[] }).toolCalls).toHaveLength(1);
      } else {
        expect(assistantMessages).toHaveLength(1);
        expect(steps.map((s) => s.type)).toEqual(['message_creation']);
      }
    }
  }, 60_000);
});

/**
 * A run's history is read in one snapshot: statuses and item events are two tables, and
 * a commit that lands between two separate reads (a claim writes the run's IN_PROGRESS and
 * its step's start together) would show the step without the status. A content stream
 * catching up from that page would deliver the step and pass over the IN_PROGRESS for
 * good (it counts as behind the step). PostgreSQL only: PGlite has one connection, and no
 * commit can land between two statements of another caller.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: false });
});
afterAll(async () => {
  await t?.close();
});

describe('the history of a run, read while a claim commits', () => {
  it('never has a version’s item events without the status event they came with', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const run = await createRun(t, threadId, { assistantId });
    const { database } = t.app;
    if (database.driver !== 'postgres') throw new Error('PostgreSQL only');
    const writer = postgres(database.url, { max: 1, onnotice: () => {} });
    const [seqRow] = await writer<{ thread_seq: number }[]>`select thread_seq from runs where id = ${run.id}`;
    const threadSeq = seqRow!.thread_seq;
    let started!: () => void;
    const reading = new Promise<void>((resolve) => (started = resolve));
    try {
      // A claim's commit, held open: the item table locked, so that a read of it waits until
      // the commit, while a read of the statuses does not.
      const committed = writer.begin(async (tx) => {
        await tx`lock table run_item_events in access exclusive mode`;
        await tx`insert into run_events (run_id, version, thread_id, thread_seq, from_status, to_status, at)
          values (${run.id}, 2, ${threadId}, ${threadSeq}, 'queued', 'in_progress', 1)`;
        await tx`insert into run_item_events (run_id, version, sub, thread_id, thread_seq, kind, item_id, change, at)
          values (${run.id}, 2, 1, ${threadId}, ${threadSeq}, 'step', 'step_1', 'in_progress', 1)`;
        await reading; // the history read has started, and waits on the items
        await new Promise((resolve) => setTimeout(resolve, 200));
      });
      // The claim holds its lock before the read begins.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const page = t.app.services.history.contentAfter({ runId: run.id }, { threadSeq, version: 1, sub: 0 });
      started();
      await committed;
      const { events } = await page;
      const versions = events.map((e) => ('kind' in e ? `item ${e.version}.${e.sub}` : `status ${e.version}`));
      // Both, or neither (the snapshot began before the commit): never the item alone.
      expect([[], ['status 2', 'item 2.1']]).toContainEqual(versions);
    } finally {
      await writer.end();
    }
  });
});

/**
 * RUN_EVENTS_RETENTION_DAYS: the event history of runs that ended longer ago than the
 * window is pruned, and only theirs. A resume from a cursor inside the window gets every
 * event after it, no gap; one from a pruned cursor is refused as CURSOR_EXPIRED, saying to
 * subscribe without `after`, which works.
 */
import { eq, inArray, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventHistoryFloors, runEvents, runItemEvents } from '../../src/db/schema.js';
import { encodeContentCursor } from '../../src/realtime/content-streams.js';
import { encodeEventCursor } from '../../src/realtime/run-streams.js';
import { pruneExpiredEvents } from '../../src/runs/retention.js';
import { unixNow } from '../../src/app.js';
import { createAssistant, createRun } from '../support/fixtures.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  // The worker's own housekeeping keeps everything here: the spec prunes when it chooses.
  t = await startTestApp({ worker: true, runEventsRetentionDays: 0 });
});
afterAll(async () => {
  await t?.close();
});

const EVENT_FIELDS = `__typename cursor runId
  ... on RunStatusEvent { status version }
  ... on MessageEvent { kind message { id text } }
  ... on MessageDeltaEvent { index text }
  ... on RunStepEvent { step { id status } }`;
const RUN_EVENTS = `subscription($threadId: ID!, $runId: ID!, $after: String) { runEvents(threadId: $threadId, runId: $runId, after: $after) { ${EVENT_FIELDS} } }`;
const THREAD_EVENTS = `subscription($threadId: ID!, $after: String) { threadEvents(threadId: $threadId, after: $after) { ${EVENT_FIELDS} } }`;
const RUN_STATUS = `subscription($runId: ID!, $afterVersion: Int) { runStatusChanged(runId: $runId, afterVersion: $afterVersion) { status version } }`;
const THREAD_RUNS = `subscription($threadId: ID!, $after: String) { threadRunsChanged(threadId: $threadId, after: $after) { runId status } }`;

/** A finished run of the thread (the scripted model answers at once). */
async function finishedRun(threadId: string, assistantId: string, content: string): Promise<string> {
  await t.ok('mutation($t: ID!, $c: String!) { createMessage(threadId: $t, input: { role: USER, content: $c }) { id } }', {
    t: threadId,
    c: content,
  });
  const run = await createRun(t, threadId, { assistantId });
  let status = '';
  const poll = async () => {
    const data = await t.ok<any>('query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status } }', { t: threadId, r: run.id });
    status = data.run.status;
  };
  await poll();
  for (let i = 0; i < 200 && status !== 'COMPLETED'; i++) {
    await new Promise((r) => setTimeout(r, 50));
    await poll();
  }
  expect(status).toBe('COMPLETED');
  return run.id;
}

/** The run's durable events' positions, in order. */
async function positions(runId: string) {
  const db = t.app.database.db;
  const statuses = await db.select().from(runEvents).where(eq(runEvents.runId, runId));
  const items = await db.select().from(runItemEvents).where(eq(runItemEvents.runId, runId));
  return [...statuses.map((s) => ({ threadSeq: s.threadSeq, version: s.version, sub: 0 })), ...items].sort(
    (a, b) => a.threadSeq - b.threadSeq || a.version - b.version || a.sub - b.sub,
  );
}

/** The error a subscription is refused with. */
async function refusal(query: string, variables: Record<string, unknown>): Promise<any> {
  const sub = collect(t.wsClient(), query, variables);
  const error = await sub.done.then(
    () => undefined,
    (e: unknown) => e,
  );
  return sub.events[0]?.errors?.[0] ?? (error as any[] | undefined)?.[0];
}

describe('pruning the event history of runs that ended before the window', () => {
  let threadId: string;
  let runs: string[];
  const old: { runId: string; first: any; last: any }[] = [];
  let keptEvents: any[];
  let floorCursor: string;

  beforeAll(async () => {
    const assistantId = await createAssistant(t);
    threadId = (await t.ok<any>('mutation { createThread(input: {}) { id } }')).createThread.id;
    runs = [];
    for (const text of ['first', 'second', 'third']) runs.push(await finishedRun(threadId, assistantId, text));
    // The first two ended 40 days ago, the third just now.
    const db = t.app.database.db;
    await db
      .update(runEvents)
      .set({ at: sql`${runEvents.at} - ${40 * 86_400}` })
      .where(inArray(runEvents.runId, runs.slice(0, 2)));
    for (const runId of runs.slice(0, 2)) {
      const p = await positions(runId);
      old.push({ runId, first: p[0], last: p.at(-1) });
    }
    floorCursor = encodeContentCursor(old[1]!.last);
    // What a resume from the end of the second run gets before anything is pruned: the third run, whole.
    const before = collect(t.wsClient(), THREAD_EVENTS, { threadId, after: floorCursor });
    await eventually(() => before.events.some((e: any) => e.data?.threadEvents.status === 'COMPLETED'));
    before.stop();
    keptEvents = before.events.map((e: any) => e.data.threadEvents);
  });

  it('deletes the history of those runs only, batch by batch, and records how far it went', async () => {
    const db = t.app.database.db;
    const thirdBefore = await positions(runs[2]!);
    expect(thirdBefore.length).toBeGreaterThan(3);
    expect(await pruneExpiredEvents(db, { retentionDays: 30, now: unixNow(), batch: 1 })).toBe(2);
    expect(await positions(runs[0]!)).toEqual([]);
    expect(await positions(runs[1]!)).toEqual([]);
    expect(await positions(runs[2]!)).toEqual(thirdBefore);
    const [floor] = await db.select().from(eventHistoryFloors).where(eq(eventHistoryFloors.threadId, threadId));
    expect(floor).toMatchObject(old[1]!.last);
    // Nothing more is due; a window of 0 days keeps everything.
    expect(await pruneExpiredEvents(db, { retentionDays: 30, now: unixNow() })).toBe(0);
    expect(await pruneExpiredEvents(db, { retentionDays: 0, now: unixNow() + 1000 * 86_400 })).toBe(0);
    // The runs, their messages and steps stay.
    const data = await t.ok<any>('query($t: ID!) { runs(threadId: $t, first: 5) { nodes { id status } } }', { t: threadId });
    expect(data.runs.nodes.map((r: any) => r.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
  });

  it('a resume from a cursor inside the window gets every event after it, as before the pruning', async () => {
    const after = collect(t.wsClient(), THREAD_EVENTS, { threadId, after: floorCursor });
    await eventually(() => after.events.length >= keptEvents.length);
    after.stop();
    expect(after.events.map((e: any) => e.data.threadEvents)).toEqual(keptEvents);
    // runEvents of the kept run, from its first event: the rest of it.
    const first = encodeContentCursor((await positions(runs[2]!))[0]!);
    const run = collect(t.wsClient(), RUN_EVENTS, { threadId, runId: runs[2], after: first });
    await run.done;
    expect(run.events.map((e: any) => e.data.runEvents)).toEqual(keptEvents.slice(1).filter((e) => e.runId === runs[2]));
  });

  it('a resume from a pruned cursor is refused as CURSOR_EXPIRED, on every subscription, saying how to start over', async () => {
    const expired = { code: 'CURSOR_EXPIRED', argument: 'after', threadId, restart: 'subscribe without after' };
    const inside = encodeContentCursor(old[0]!.first);
    const threadError = await refusal(THREAD_EVENTS, { threadId, after: inside });
    expect(threadError.extensions).toEqual(expired);
    expect(threadError.message).toMatch(/pruned.*without `after`/);
    expect((await refusal(RUN_EVENTS, { threadId, runId: old[1]!.runId, after: inside })).extensions).toEqual({
      ...expired,
      runId: old[1]!.runId,
    });
    expect((await refusal(RUN_STATUS, { runId: old[1]!.runId, afterVersion: 1 })).extensions).toMatchObject({ code: 'CURSOR_EXPIRED' });
    const statusCursor = encodeEventCursor({ threadSeq: old[0]!.first.threadSeq, version: 1 });
    expect((await refusal(THREAD_RUNS, { threadId, after: statusCursor })).extensions).toMatchObject({ code: 'CURSOR_EXPIRED' });
    // A cursor that is no cursor is still bad input, not expired.
    expect((await refusal(THREAD_EVENTS, { threadId, after: 'nonsense' })).extensions.code).toBe('BAD_USER_INPUT');
  });

  it('subscribing without after works on a thread and a run whose history was pruned', async () => {
    const run = collect(t.wsClient(), RUN_EVENTS, { threadId, runId: old[0]!.runId });
    await run.done;
    expect(run.events.map((e: any) => e.data.runEvents)).toEqual([
      expect.objectContaining({ __typename: 'RunStatusEvent', status: 'COMPLETED' }),
    ]);
    const status = collect(t.wsClient(), RUN_STATUS, { runId: old[0]!.runId });
    await status.done;
    expect(status.events.map((e: any) => e.data.runStatusChanged.status)).toEqual(['COMPLETED']);
    // Resuming from the end of the pruned history (where the thread's floor is) lacks nothing.
    const third = runs[2];
    const changes = collect(t.wsClient(), THREAD_RUNS, { threadId, after: encodeEventCursor(old[1]!.last) });
    await eventually(() => changes.events.length >= 3);
    changes.stop();
    expect(changes.events.map((e: any) => [e.data.threadRunsChanged.runId, e.data.threadRunsChanged.status])).toEqual([
      [third, 'QUEUED'],
      [third, 'IN_PROGRESS'],
      [third, 'COMPLETED'],
    ]);
  });
});

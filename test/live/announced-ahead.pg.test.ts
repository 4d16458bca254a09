/**
 * A delta is announced as the model writes it, ahead of the write that stores its text:
 * subscribers read an answer at the model's pace however slow the database is to store
 * it, a subscriber that resumes or starts while the row is behind gets the text once the
 * row has it, and a run that ends before the row caught up ends its message with exactly
 * the text its deltas announced. The message row is held locked here (a slow database),
 * so this runs on PostgreSQL (with and without Redis).
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assemble } from '../support/deltas.js';
import { newRun } from '../support/fixtures.js';
import { holdRows } from '../support/row-locks.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const RUN_EVENTS = `subscription($threadId: ID!, $runId: ID!, $after: String) { runEvents(threadId: $threadId, runId: $runId, after: $after) {
  __typename cursor
  ... on RunStatusEvent { status }
  ... on MessageEvent { kind message { status text } }
  ... on MessageDeltaEvent { index text } } }`;

const eventsOf = (sub: { events: any[] }) => sub.events.map((r) => r.data.runEvents);

/** The message's row as stored, read on a connection of its own. */
async function storedText(url: string, messageId: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`select content from messages where id = ${messageId}`;
    return row!.content as string;
  } finally {
    await sql.end();
  }
}

describe('text announced ahead of its write', () => {
  it('reaches subscribers while the row is behind; resumes and late subscribers catch up from the row; a cancel ends the message with exactly the announced text', async () => {
    const database = t.app.database;
    if (database.driver !== 'postgres') throw new Error('PostgreSQL only');
    const { runId, threadId } = await newRun(t);
    const first = collect(t.wsClient(), RUN_EVENTS, { threadId, runId });
    await eventually(() => first.events.length === 1);
    const [run] = (await t.app.engine.claim('spec-worker', 50, 30)).filter((r) => r.id === runId);
    if (!run?.leaseToken) throw new Error('run not claimed');
    const stream = t.app.engine.streamMessage(run, run.leaseToken);
    stream.push('Hello');
    await eventually(() => assemble(eventsOf(first)) === 'Hello');

    // The database is slow to store the rest: its row stays locked.
    const lock = await holdRows(database.url, 'select id from messages where id = any($1) for update', [stream.messageId]);
    stream.push(' wor'); // its write waits for the lock
    await eventually(() => assemble(eventsOf(first)) === 'Hello wor');
    stream.push('ld 👋'); // its write waits for that one
    await eventually(() => assemble(eventsOf(first)) === 'Hello world 👋');
    expect(await storedText(database.url, stream.messageId)).toBe('Hello');

    // A subscriber resuming from the last delta has it all; one starting now gets what the row has.
    const lastCursor = eventsOf(first).at(-1).cursor;
    const resumed = collect(t.wsClient(), RUN_EVENTS, { threadId, runId, after: lastCursor });
    const late = collect(t.wsClient(), RUN_EVENTS, { threadId, runId });
    await eventually(() => assemble(eventsOf(late)) === 'Hello');

    // Cancelled before the row caught up: the worker writes what it announced, then ends the run.
    await t.ok(`mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }`, { t: threadId, r: runId });
    const closing = stream.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(await storedText(database.url, stream.messageId)).toBe('Hello');
    await lock.release();
    await closing;
    await t.app.engine.transition(runId, 'cancelled', {}, { leaseToken: run.leaseToken, from: ['cancelling'] });
    await Promise.all([first.done, resumed.done, late.done]);

    const text = 'Hello world 👋';
    expect(await storedText(database.url, stream.messageId)).toBe(text);
    for (const [sub, had] of [
      [first, ''],
      [resumed, text],
      [late, ''],
    ] as const) {
      const events = eventsOf(sub);
      expect(assemble(events, had)).toBe(text);
      expect(events.find((e) => e.kind === 'INCOMPLETE')?.message).toEqual({ status: 'INCOMPLETE', text });
      expect(events.at(-1)).toMatchObject({ __typename: 'RunStatusEvent', status: 'CANCELLED' });
    }
  });
});

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
import { collect, eventually, startTestApp, until, type TestApp } from '../support/test-app.js';

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

/** How long a statement of the second app waits on a lock before it gives up. */
const LOCK_MS = 500;

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

/** Until the message row holds `text` (it may not exist yet); failing, says what it holds. */
async function untilStored(url: string, messageId: string, text: string): Promise<void> {
  const stored = () => storedText(url, messageId).catch(() => undefined);
  await until(async () => ((await stored()) === text ? true : undefined), 5000).catch(async () => expect(await stored()).toBe(text));
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

describe('a write that opened a message and failed in its appends (the database gave up on a lock)', () => {
  let slow: TestApp;
  beforeAll(async () => {
    // Statements give up after half a second on a lock: a transient failure, retried.
    slow = await startTestApp({ databaseTimeouts: { lockMs: LOCK_MS } });
  });
  afterAll(async () => {
    await slow?.close();
  });

  it('writes the opened message its text once: only what the failed statement carried is written again', async () => {
    const database = slow.app.database;
    if (database.driver !== 'postgres') throw new Error('PostgreSQL only');
    const [a, b] = [await newRun(slow), await newRun(slow)];
    const claimed = await slow.app.engine.claim('spec-worker', 50, 30);
    const runOf = (runId: string) => {
      const run = claimed.find((r) => r.id === runId);
      if (!run?.leaseToken) throw new Error('run not claimed');
      return { run, leaseToken: run.leaseToken };
    };
    const { run: runA, leaseToken: tokenA } = runOf(a.runId);
    const { run: runB, leaseToken: tokenB } = runOf(b.runId);
    const subB = collect(slow.wsClient(), RUN_EVENTS, { threadId: b.threadId, runId: b.runId });
    const streamB = slow.app.engine.streamMessage(runB, tokenB);
    streamB.push('b1');
    await eventually(() => assemble(eventsOf(subB)) === 'b1');
    await untilStored(database.url, streamB.messageId, 'b1');

    // B's row is held: the write of its next piece waits on the lock, then fails.
    const lock = await holdRows(database.url, 'select id from messages where id = any($1) for update', [streamB.messageId]);
    streamB.push('x');
    await eventually(() => assemble(eventsOf(subB)) === 'b1x');
    // Meanwhile A opens its message and B has more: the next write opens A's message (it
    // commits) and appends to B's (it fails on the lock, and is given back).
    const streamA = slow.app.engine.streamMessage(runA, tokenA);
    streamA.push('a1');
    streamB.push('y');
    await untilStored(database.url, streamA.messageId, 'a1');
    await new Promise((r) => setTimeout(r, LOCK_MS + 300)); // the appends' statement has given up
    expect(await storedText(database.url, streamB.messageId)).toBe('b1');
    await lock.release();

    streamA.push('a2');
    await untilStored(database.url, streamA.messageId, 'a1a2');
    await untilStored(database.url, streamB.messageId, 'b1xy');
    await Promise.all([streamA.close(), streamB.close()]);
    // Nothing written twice, nothing left out.
    expect(await storedText(database.url, streamA.messageId)).toBe('a1a2');
    expect(await storedText(database.url, streamB.messageId)).toBe('b1xy');
  });
});

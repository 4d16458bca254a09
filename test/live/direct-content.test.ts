/**
 * runEvents and threadEvents written straight to the websocket: what a subscriber reads
 * is what GraphQL execution would have sent, frame for frame; deliveries the projection
 * cannot write (a message event's message) are executed and sent in their place in the
 * order; a reader that falls behind is cut off with where to resume, and resuming there
 * loses no text. The engine is driven by hand (claim, stream pieces, finish).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RunRow } from '../../src/db/schema.js';
import { contentProjection } from '../../src/graphql/event-projection.js';
import { schema } from '../../src/graphql/schema.js';
import type { MessageStream } from '../../src/runs/message-streams.js';
import { assemble } from '../support/deltas.js';
import { newRun } from '../support/fixtures.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
/**
 * One whose subscribers may have 5 events waiting (slow readers are cut off early), whose
 * operations may have 64 aliases, and whose answers (each event's) at most 8 KB.
 */
let small: TestApp;
beforeAll(async () => {
  [t, small] = await Promise.all([
    startTestApp(),
    startTestApp({ subscriptionBuffer: 5, queryLimits: { maxAliases: 64 }, maxResponseBytes: 8192 }),
  ]);
});
afterAll(async () => {
  await Promise.all([t?.close(), small?.close()]);
});

const USAGE = { promptTokens: 1, completionTokens: 1, totalTokens: 2 };
const VARIABLES = '$threadId: ID!, $runId: ID!, $after: String';
/** Every type's scalar fields: each delivery is written from the projection. */
const SCALARS = `__typename cursor runId threadId
  ... on RunStatusEvent { status previousStatus version at run { id status version } }
  ... on MessageEvent { kind at }
  ... on MessageDeltaEvent { messageId index text }
  ... on RunStepEvent { at }`;
/** The message of a message event needs a read: those are executed, the rest written. */
const WITH_MESSAGE = `__typename cursor ...Text
  ... on RunStatusEvent { status }
  ... on MessageEvent { kind message { id status text } }
  ... on RunStepEvent { step { type status } }`;
const TEXT = 'fragment Text on MessageDeltaEvent { messageId index text }';
/** The operation, written directly; with a directive at its root, which the projection leaves to execution. */
const runEvents = (selection: string, executed = false, rest = '') =>
  `subscription(${VARIABLES}) { runEvents(threadId: $threadId, runId: $runId, after: $after)${executed ? ' @include(if: true)' : ''} { ${selection} } } ${rest}`;

/** A graphql-ws client on a raw socket: the frames exactly as the server wrote them. */
async function rawClient(app: TestApp) {
  const socket = new WebSocket(app.wsUrl, 'graphql-transport-ws');
  const frames: string[] = [];
  const messages: any[] = [];
  socket.on('message', (data) => {
    frames.push(String(data));
    messages.push(JSON.parse(String(data)));
  });
  await once(socket, 'open');
  socket.send(JSON.stringify({ type: 'connection_init' }));
  await eventually(() => messages.some((m) => m.type === 'connection_ack'));
  return {
    socket,
    subscribe(query: string, variables: Record<string, unknown>, id = '1') {
      socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables } }));
    },
    /** The `next` frames of subscription `id`, as sent. */
    nexts: (id = '1') => frames.filter((_, i) => messages[i].type === 'next' && messages[i].id === id),
    payloads: (id = '1') => messages.filter((m) => m.type === 'next' && m.id === id).map((m) => m.payload),
    completed: (id = '1') => messages.some((m) => m.type === 'complete' && m.id === id),
  };
}
type RawClient = Awaited<ReturnType<typeof rawClient>>;

async function claim(app: TestApp, runId: string): Promise<{ run: RunRow; leaseToken: string }> {
  const claimed = await app.app.engine.claim('spec-worker', 50, 30);
  const run = claimed.find((r) => r.id === runId);
  if (!run?.leaseToken) throw new Error('run not claimed');
  return { run, leaseToken: run.leaseToken };
}

async function finish(app: TestApp, run: RunRow, leaseToken: string, text: string, stream: MessageStream) {
  const message = await stream.close();
  return app.app.engine.finishWithMessage(run, leaseToken, { text, usage: USAGE, truncated: false }, USAGE, message);
}

/** Once every piece pushed is committed (and so announced). */
async function written(stream: MessageStream): Promise<void> {
  do await (stream.writing ?? new Promise((r) => setImmediate(r)));
  while (stream.pending || stream.writing);
}

const deltaCount = (c: RawClient) => c.nexts().filter((f) => f.includes('"MessageDeltaEvent"')).length;

describe('runEvents written straight to the socket', () => {
  it('sends the frames execution would send, for every kind of delivery, written or executed', async () => {
    const { runId, threadId } = await newRun(t);
    // Three subscribers: all written, written but for the message events, all executed.
    const operations = [
      runEvents(SCALARS),
      runEvents(WITH_MESSAGE, false, TEXT),
      runEvents(SCALARS, true),
      runEvents(WITH_MESSAGE, true, TEXT),
    ];
    expect(operations.map((q) => contentProjection(schema, parse(q), undefined) !== undefined)).toEqual([true, true, false, false]);
    const clients = await Promise.all(operations.map(() => rawClient(t)));
    clients.forEach((c, i) => c.subscribe(operations[i]!, { threadId, runId }));
    await eventually(() => clients.every((c) => c.nexts().length === 1));

    const { run, leaseToken } = await claim(t, runId);
    const stream = t.app.engine.streamMessage(run, leaseToken);
    const pieces = ['Hello', ', "quoted" \\ ', 'wörld ', '👩‍👩‍👧‍👦', ' 🎉 ', '日本語', '\n\t𝒳 </script>'];
    for (const [i, piece] of pieces.entries()) {
      stream.push(piece);
      await written(stream);
      // Each delta reaches every subscriber before the next: the same deliveries for all.
      await eventually(() => clients.every((c) => deltaCount(c) === i + 1));
    }
    await finish(t, run, leaseToken, pieces.join(''), stream);
    await eventually(() => clients.every((c) => c.completed()));

    const [scalars, withMessage, scalarsExecuted, withMessageExecuted] = clients.map((c) => c.nexts());
    expect(scalars).toEqual(scalarsExecuted);
    expect(withMessage).toEqual(withMessageExecuted);
    const events = clients[1]!.payloads().map((p) => p.data.runEvents);
    expect(events.map((e) => e.__typename)).toEqual([
      'RunStatusEvent',
      'RunStatusEvent',
      'RunStepEvent',
      'MessageEvent',
      ...pieces.map(() => 'MessageDeltaEvent'),
      'MessageEvent',
      'RunStepEvent',
      'RunStatusEvent',
    ]);
    expect(assemble(events)).toBe(pieces.join(''));
    expect(events.find((e) => e.kind === 'COMPLETED').message).toMatchObject({ status: 'COMPLETED', text: pieces.join('') });
    for (const c of clients) c.socket.close();
  });

  it('keeps the order when executed deliveries and written ones come in one burst', async () => {
    const { runId, threadId } = await newRun(t);
    const client = await rawClient(t);
    client.subscribe(runEvents(WITH_MESSAGE, false, TEXT), { threadId, runId });
    await eventually(() => client.nexts().length === 1);
    const { run, leaseToken } = await claim(t, runId);
    const stream = t.app.engine.streamMessage(run, leaseToken);
    // Deltas announced while the CREATED event (executed: it reads the message) is under
    // way, and right up to the COMPLETED one.
    const pieces = Array.from({ length: 40 }, (_, i) => `piece ${i} ✓ `);
    for (const piece of pieces) {
      stream.push(piece);
      await new Promise((r) => setImmediate(r));
    }
    await finish(t, run, leaseToken, pieces.join(''), stream);
    await eventually(() => client.completed());
    const events = client.payloads().map((p) => p.data.runEvents);
    const order = events.map((e) => (e.__typename === 'MessageEvent' ? e.kind : e.__typename));
    const created = order.indexOf('CREATED');
    const completed = order.indexOf('COMPLETED');
    const deltas = order.flatMap((o, i) => (o === 'MessageDeltaEvent' ? [i] : []));
    expect(deltas.length).toBeGreaterThan(0);
    expect(created).toBeLessThan(deltas[0]!);
    expect(completed).toBeGreaterThan(deltas.at(-1)!);
    expect(assemble(events)).toBe(pieces.join(''));
    expect(events[completed].message.text).toBe(pieces.join(''));
    expect(events.at(-1)).toMatchObject({ __typename: 'RunStatusEvent', status: 'COMPLETED' });
    client.socket.close();
  });
});

describe('what runEvents written straight to the socket hold', () => {
  it('is let go at once on unsubscribe, and when the socket closes', async () => {
    const [a, b] = await Promise.all([newRun(t), newRun(t)]);
    const client = await rawClient(t);
    client.subscribe(runEvents(SCALARS), { threadId: a.threadId, runId: a.runId }, 'a');
    client.subscribe(runEvents(SCALARS), { threadId: b.threadId, runId: b.runId }, 'b');
    await eventually(() => client.nexts('a').length === 1 && client.nexts('b').length === 1);
    const listening = (runId: string) => t.app.services.bus.subscriberCount(`run-content:${runId}`);
    expect([listening(a.runId), listening(b.runId)]).toEqual([1, 1]);
    client.socket.send(JSON.stringify({ id: 'a', type: 'complete' }));
    await eventually(() => listening(a.runId) === 0);
    expect(listening(b.runId)).toBe(1);
    client.socket.close();
    await eventually(() => listening(b.runId) === 0);
  });

  it('answers an executed delivery that is too large with RESPONSE_TOO_LARGE, as execution does', async () => {
    const { runId, threadId } = await newRun(small);
    const operations = [runEvents(WITH_MESSAGE, false, TEXT), runEvents(WITH_MESSAGE, true, TEXT)];
    const clients = await Promise.all(operations.map(() => rawClient(small)));
    clients.forEach((c, i) => c.subscribe(operations[i]!, { threadId, runId }));
    await eventually(() => clients.every((c) => c.nexts().length === 1));
    const { run, leaseToken } = await claim(small, runId);
    const stream = small.app.engine.streamMessage(run, leaseToken);
    const pieces = ['x'.repeat(1000), 'y'.repeat(1000), 'z'.repeat(1000)];
    for (const [i, piece] of pieces.entries()) {
      for (let k = 0; k < 3; k++) stream.push(piece); // 3 KB a delta: not counted, as in execution
      await written(stream);
      await eventually(() => clients.every((c) => deltaCount(c) === i + 1));
    }
    await finish(small, run, leaseToken, pieces.map((p) => p.repeat(3)).join(''), stream);
    await eventually(() => clients.every((c) => c.completed()));
    const [direct, executed] = clients.map((c) => c.nexts());
    expect(direct).toEqual(executed);
    // The COMPLETED message event carries the 9 KB text: over the 8 KB an answer may take.
    const completed = clients[0]!.payloads().find((p) => p.errors);
    expect(completed).toMatchObject({ data: null, errors: [{ extensions: { code: 'RESPONSE_TOO_LARGE' } }] });
    for (const c of clients) c.socket.close();
  });
});

describe('a reader of runEvents that falls behind', () => {
  // Each delta's text 40 times over: every frame is large, so the socket's buffers (a
  // few MB in the kernel) fill after a few hundred deltas.
  const copies = Array.from({ length: 40 }, (_, i) => `t${i}: text`).join(' ');
  it.each([
    ['written straight to the socket', false],
    ['executed', true],
  ])('%s: is cut off with SUBSCRIPTION_LAGGED and a cursor that resumes the text without a gap', async (_, executed) => {
    const query = runEvents(
      `__typename cursor ... on MessageDeltaEvent { index text ${copies} } ... on RunStatusEvent { status }`,
      executed,
    );
    expect(contentProjection(schema, parse(query), undefined) === undefined).toBe(executed);
    const { runId, threadId } = await newRun(small);
    const client = await rawClient(small);
    client.subscribe(query, { threadId, runId });
    await eventually(() => client.nexts().length === 1);
    (client.socket as any)._socket.pause(); // the client stops reading

    const { run, leaseToken } = await claim(small, runId);
    const stream = small.app.engine.streamMessage(run, leaseToken);
    let text = '';
    const push = async (piece: string) => {
      stream.push(piece);
      text += piece;
      await written(stream);
    };
    // Pieces that travel with their deltas (under 1,500 bytes a line), until the server
    // gives up on the reader (the kernel's buffers first; then the 5-event bound).
    for (let pieces = 0; small.app.services.bus.subscriberCount(`run-content:${runId}`) > 0; pieces++) {
      if (pieces > 5000) throw new Error('the server never cut the slow reader off');
      await push('é'.repeat(50) + randomBytes(750).toString('base64'));
    }
    // The text goes on after the cut-off.
    await push('and the end.');
    await finish(small, run, leaseToken, text, stream);

    (client.socket as any)._socket.resume();
    await eventually(() => client.completed(), 20_000);
    const payloads = client.payloads();
    const last = payloads.at(-1);
    expect(last).toMatchObject({ data: null, errors: [{ path: ['runEvents'], extensions: { code: 'SUBSCRIPTION_LAGGED' } }] });
    const lastCursor = last.errors[0].extensions.lastCursor;
    const delivered = payloads.slice(0, -1).map((p) => p.data.runEvents);
    expect(delivered.at(-1).cursor).toBe(lastCursor);
    const had = assemble(delivered);
    expect(had.length).toBeGreaterThan(0);
    expect(had.length).toBeLessThan(text.length);
    client.socket.close();

    // From there: exactly the rest, no character twice.
    const resumed = collect(small.wsClient(), query, { threadId, runId, after: lastCursor });
    await resumed.done;
    const rest = resumed.events.map((r: any) => r.data.runEvents);
    expect(assemble(rest, had)).toBe(text);
    expect(rest.at(-1)).toMatchObject({ __typename: 'RunStatusEvent', status: 'COMPLETED' });
  });
});

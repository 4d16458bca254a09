/**
 * Live events that never miss a transition: resuming after a disconnect, cutting off a
 * slow reader with a bounded buffer, and the websocket limits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createAssistant, createRun, createThread, newRun } from '../support/fixtures.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';
import type { DomainError } from '../../src/domain/errors.js';
import { runStatusStream, type DirectSink } from '../../src/realtime/run-streams.js';
import type { ExecutionResult } from 'graphql';
import { createYoga } from 'graphql-yoga';
import { maskError } from '../../src/graphql/errors.js';
import { useDirectSubscriptions } from '../../src/graphql/event-projection.js';
import { schema } from '../../src/graphql/schema.js';

let t: TestApp;
let limited: TestApp;
beforeAll(async () => {
  [t, limited] = await Promise.all([
    startTestApp({ subscriptionBuffer: 5 }),
    startTestApp({ websocket: { maxSubscriptions: 3, maxMessageBytes: 4096, initTimeoutMs: 300, keepAliveMs: 200 } }),
  ]);
});
afterAll(async () => {
  await Promise.all([t?.close(), limited?.close()]);
});

const RUN_EVENTS = `subscription($runId: ID!, $after: Int) { runStatusChanged(runId: $runId, afterVersion: $after) { version previousStatus status } }`;
const THREAD_EVENTS = `subscription($threadId: ID!, $after: String) { threadRunsChanged(threadId: $threadId, after: $after) { runId version status cursor } }`;
const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };

/** queued -> in_progress -> requires_action -> queued -> in_progress -> completed */
async function fullLifecycle(runId: string, threadId: string) {
  const engine = t.app.engine;
  await engine.transition(runId, 'in_progress');
  await engine.requireAction(runId, [CALL]);
  await t.app.services.runs.submitToolOutputs('default', threadId, runId, [{ toolCallId: 'call_1', output: 'ok' }]);
  await engine.transition(runId, 'in_progress');
  await engine.transition(runId, 'completed');
}

describe('resuming runStatusChanged with afterVersion', () => {
  it('replays exactly the transitions after that version, then completes', async () => {
    const { runId, threadId } = await newRun(t);
    await fullLifecycle(runId, threadId);
    const sub = collect(t.wsClient(), RUN_EVENTS, { runId, after: 2 });
    await sub.done;
    expect(sub.events.map((e) => e.data!.runStatusChanged)).toEqual([
      { version: 3, previousStatus: 'IN_PROGRESS', status: 'REQUIRES_ACTION' },
      { version: 4, previousStatus: 'REQUIRES_ACTION', status: 'QUEUED' },
      { version: 5, previousStatus: 'QUEUED', status: 'IN_PROGRESS' },
      { version: 6, previousStatus: 'IN_PROGRESS', status: 'COMPLETED' },
    ]);
  });

  it('after a client drops mid-run, the reconnect gets the missed events and then the live ones, no gap, no duplicate', async () => {
    const { runId, threadId } = await newRun(t);
    const first = collect(t.wsClient(), RUN_EVENTS, { runId });
    await eventually(() => first.events.length === 1);
    await t.app.engine.transition(runId, 'in_progress');
    await eventually(() => first.events.length === 2);
    first.stop(); // the client goes away...
    const lastSeen = first.events.at(-1)!.data!.runStatusChanged.version;
    await t.app.engine.requireAction(runId, [CALL]); // ...and misses these
    await t.app.services.runs.submitToolOutputs('default', threadId, runId, [{ toolCallId: 'call_1', output: 'ok' }]);

    const second = collect(t.wsClient(), RUN_EVENTS, { runId, after: lastSeen });
    await eventually(() => second.events.length === 2);
    await t.app.engine.transition(runId, 'in_progress'); // live again
    await t.app.engine.transition(runId, 'completed');
    await second.done;
    expect(second.events.map((e) => e.data!.runStatusChanged.version)).toEqual([3, 4, 5, 6]);
  });

  it('completes at once when the run ended at or before afterVersion', async () => {
    const { runId, threadId } = await newRun(t);
    await fullLifecycle(runId, threadId);
    const sub = collect(t.wsClient(), RUN_EVENTS, { runId, after: 6 });
    await sub.done;
    expect(sub.events).toEqual([]);
    await eventually(() => t.app.services.bus.subscriberCount(`run:${runId}`) === 0, 2000);
  });

  it('rejects a negative afterVersion', async () => {
    const { runId } = await newRun(t);
    const sub = collect(t.wsClient(), RUN_EVENTS, { runId, after: -1 });
    await sub.done;
    expect(sub.events[0]!.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('resuming threadRunsChanged with a cursor', () => {
  it('continues after the event whose cursor was kept, across runs', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const sub = collect(t.wsClient(), THREAD_EVENTS, { threadId });
    await eventually(() => t.app.services.bus.subscriberCount(`thread:${threadId}`) === 1);
    const one = await createRun(t, threadId, { assistantId });
    await t.app.engine.transition(one.id, 'in_progress');
    await eventually(() => sub.events.length === 2);
    sub.stop();
    const cursor = sub.events.at(-1)!.data!.threadRunsChanged.cursor;

    await t.app.engine.transition(one.id, 'completed'); // missed
    const two = await createRun(t, threadId, { assistantId }); // missed
    const resumed = collect(t.wsClient(), THREAD_EVENTS, { threadId, after: cursor });
    await eventually(() => resumed.events.length === 2);
    await t.app.engine.transition(two.id, 'cancelled'); // live
    await eventually(() => resumed.events.length === 3);
    resumed.stop();
    expect(
      resumed.events.map((e) => [e.data!.threadRunsChanged.runId, e.data!.threadRunsChanged.version, e.data!.threadRunsChanged.status]),
    ).toEqual([
      [one.id, 3, 'COMPLETED'],
      [two.id, 1, 'QUEUED'],
      [two.id, 2, 'CANCELLED'],
    ]);
  });

  it('replays a long history in full (more than one page) from an old cursor', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const { runs } = t.app.services;
    const engine = t.app.engine;
    for (let i = 0; i < 300; i++) {
      const run = await runs.create('default', threadId, { assistantId });
      await engine.transition(run.id, 'cancelled');
    }
    const start = Buffer.from('e1:0:0').toString('base64url'); // before the first event
    const sub = collect(t.wsClient(), THREAD_EVENTS, { threadId, after: start });
    await eventually(() => sub.events.length >= 600, 10_000);
    sub.stop();
    expect(sub.events).toHaveLength(600);
  });

  it('rejects a malformed cursor with BAD_USER_INPUT', async () => {
    const threadId = await createThread(t);
    const sub = collect(t.wsClient(), THREAD_EVENTS, { threadId, after: 'bogus' });
    await sub.done;
    expect(sub.events[0]!.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('a subscriber that reads too slowly', () => {
  it('is cut off with SUBSCRIPTION_LAGGED and where to resume, and the server lets go of it', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    // A raw graphql-ws client whose socket stops reading after it subscribes.
    const socket = new WebSocket(t.wsUrl, 'graphql-transport-ws');
    const received: any[] = [];
    socket.on('message', (data) => received.push(JSON.parse(String(data))));
    await new Promise((r) => socket.once('open', r));
    socket.send(JSON.stringify({ type: 'connection_init' }));
    await eventually(() => received.some((m) => m.type === 'connection_ack'));
    // Each event carries its run's 8 KB of metadata, so the socket's buffers fill fast.
    const query = THREAD_EVENTS.replace('cursor }', 'cursor run { metadata } }');
    socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { threadId } } }));
    await eventually(() => t.app.services.bus.subscriberCount(`thread:${threadId}`) === 1);
    (socket as any)._socket.pause(); // the client stops reading

    // Events until the server gives up on the reader (the kernel's socket buffers take a
    // few MB first; then the 5-event buffer fills).
    const metadata = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'x'.repeat(500)]));
    let made = 0;
    while (t.app.services.bus.subscriberCount(`thread:${threadId}`) > 0) {
      if (made >= 2000) throw new Error('the server never cut the slow reader off');
      const run = await createRun(t, threadId, { assistantId, metadata });
      await t.app.engine.transition(run.id, 'cancelled');
      made += 2;
    }
    const heapAfterCutOff = process.memoryUsage().heapUsed;

    (socket as any)._socket.resume();
    await eventually(() => received.some((m) => m.type === 'complete'), 5000);
    const nexts = received.filter((m) => m.type === 'next');
    const last = nexts.at(-1).payload;
    expect(last.errors[0].extensions.code).toBe('SUBSCRIPTION_LAGGED');
    const lastCursor = last.errors[0].extensions.lastCursor;
    const delivered = nexts.slice(0, -1).map((m) => m.payload.data.threadRunsChanged);
    expect(delivered.length).toBeLessThan(made);
    expect(delivered.at(-1).cursor).toBe(lastCursor);
    socket.close();
    // What the server held for the reader was bounded: the cut-off freed it.
    expect(process.memoryUsage().heapUsed - heapAfterCutOff).toBeLessThan(50 * 1024 * 1024);

    // Resuming from there yields exactly the rest.
    const resumed = collect(t.wsClient(), THREAD_EVENTS, { threadId, after: lastCursor });
    await eventually(() => delivered.length + resumed.events.length >= made, 5000);
    resumed.stop();
    expect(delivered.length + resumed.events.length).toBe(made);
  });
});

describe('events written straight to the subscriber (the websocket, for a selection of event fields)', () => {
  /** A sink that records the versions it wrote and answers `outcome` for each. */
  function recording(outcome: (written: number[], live: boolean) => 'sent' | 'backlogged' | 'gone' = () => 'sent') {
    const written: number[] = [];
    let room: Promise<void> | undefined;
    const sink: DirectSink & { written: number[]; block(): () => void } = {
      written,
      send(event, live) {
        written.push(event.version);
        return outcome(written, live);
      },
      room: () => room,
      block() {
        let open!: () => void;
        room = new Promise<void>((resolve) => (open = resolve));
        return () => {
          room = undefined;
          open();
        };
      },
    };
    return sink;
  }

  it('end as lagging, with where to resume, once the sink reports its subscriber backlogged', async () => {
    const { runId, threadId } = await newRun(t);
    const sink = recording((written) => (written.length === 3 ? 'backlogged' : 'sent'));
    const stream = await runStatusStream({ ...t.app.services, projectId: 'default', direct: sink }, runId);
    // The consumer's first next() settles only when the stream ends.
    const end = stream.next();
    await t.app.engine.transition(runId, 'in_progress');
    await t.app.engine.requireAction(runId, [CALL]);
    const result = await end;
    expect(sink.written).toEqual([1, 2, 3]);
    const lagged = (result.value as { lagged: DomainError }).lagged;
    expect(lagged.code).toBe('SUBSCRIPTION_LAGGED');
    // The third event went out before the cut-off: resume after it.
    expect(lagged.details).toEqual({ lastVersion: 3 });
    expect(t.app.services.bus.subscriberCount(`run:${runId}`)).toBe(0);
    expect((await stream.next()).done).toBe(true);
    await t.app.services.runs.submitToolOutputs('default', threadId, runId, [{ toolCallId: 'call_1', output: 'ok' }]);
  });

  it('replay history at the pace the socket drains, whatever its length, then go live', async () => {
    const { runId, threadId } = await newRun(t);
    await fullLifecycle(runId, threadId); // versions 1..6, the last one terminal
    // A sink that would cut off any live event: replayed ones must never be.
    const sink = recording((_, live) => (live ? 'backlogged' : 'sent'));
    const open = sink.block(); // the socket is full
    const stream = await runStatusStream({ ...t.app.services, projectId: 'default', direct: sink }, runId, 0);
    const end = stream.next();
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.written).toEqual([]); // waiting for room
    open();
    expect(await end).toEqual({ value: undefined, done: true }); // completed after the terminal event
    expect(sink.written).toEqual([1, 2, 3, 4, 5, 6]);
    expect(t.app.services.bus.subscriberCount(`run:${runId}`)).toBe(0);
  });

  it('write nothing more once unsubscribed, even an event already read', async () => {
    const { runId } = await newRun(t);
    const sink = recording();
    const open = sink.block();
    const stream = await runStatusStream({ ...t.app.services, projectId: 'default', direct: sink }, runId);
    const end = stream.next(); // the current state is read, and waits for room
    await new Promise((r) => setTimeout(r, 50));
    await stream.return!();
    open();
    await end;
    expect(sink.written).toEqual([]);
    expect(t.app.services.bus.subscriberCount(`run:${runId}`)).toBe(0);
  });

  it('end with the error, and free the stream, when writing an event fails', async () => {
    const { runId } = await newRun(t);
    const sink = recording(() => {
      throw new Error('cannot write');
    });
    const stream = await runStatusStream({ ...t.app.services, projectId: 'default', direct: sink }, runId);
    await expect(stream.next()).rejects.toThrow('cannot write');
    expect(t.app.services.bus.subscriberCount(`run:${runId}`)).toBe(0);
  });

  it('reach graphql-ws as their end only: done, or the lagged error with where to resume', async () => {
    const { runId } = await newRun(t);
    const sink = recording((written) => (written.length === 2 ? 'backlogged' : 'sent'));
    // The websocket path's envelop, as server.ts wires it: the plugin, error masking.
    const yoga = createYoga({ schema, plugins: [useDirectSubscriptions()], maskedErrors: { maskError, isDev: false } });
    const { subscribe, contextFactory, parse } = yoga.getEnveloped({ ...t.app.services, projectId: 'default', keyId: 'k', direct: sink });
    const results = (await subscribe({
      schema,
      document: parse('subscription($r: ID!) { runStatusChanged(runId: $r) { version status } }'),
      variableValues: { r: runId },
      contextValue: await contextFactory(),
    })) as AsyncIterableIterator<ExecutionResult>;
    const first = results.next();
    await t.app.engine.transition(runId, 'in_progress');
    const lagged = await first;
    expect(sink.written).toEqual([1, 2]); // both went straight to the sink
    expect(lagged.done).toBe(false);
    expect(lagged.value!.errors?.[0]?.extensions).toMatchObject({ code: 'SUBSCRIPTION_LAGGED', lastVersion: 2 });
    expect((await results.next()).done).toBe(true);
    expect(t.app.services.bus.subscriberCount(`run:${runId}`)).toBe(0);
  });

  it('stop, and free the stream, when the socket is gone', async () => {
    const { runId } = await newRun(t);
    const stream = await runStatusStream({ ...t.app.services, projectId: 'default', direct: recording(() => 'gone') }, runId);
    expect(await stream.next()).toEqual({ value: undefined, done: true });
    expect(t.app.services.bus.subscriberCount(`run:${runId}`)).toBe(0);
  });
});

describe('websocket limits', () => {
  it('closes a socket that does not send connection_init in time (4408)', async () => {
    const socket = new WebSocket(limited.wsUrl, 'graphql-transport-ws');
    const code = await new Promise<number>((r) => socket.once('close', (c) => r(c)));
    expect(code).toBe(4408);
  });

  it('pings idle sockets', async () => {
    const socket = new WebSocket(limited.wsUrl, 'graphql-transport-ws');
    await new Promise((r) => socket.once('open', r));
    socket.send(JSON.stringify({ type: 'connection_init' }));
    await new Promise((r) => socket.once('ping', r));
    socket.close();
  });

  it('terminates a socket that stops answering pings, and keeps one that answers', async () => {
    let silentPings = 0;
    const open = async (autoPong: boolean) => {
      const socket = new WebSocket(limited.wsUrl, 'graphql-transport-ws', { autoPong });
      if (!autoPong) socket.on('ping', () => silentPings++); // from the start: no ping missed
      await new Promise((r) => socket.once('open', r));
      socket.send(JSON.stringify({ type: 'connection_init' }));
      return socket;
    };
    const started = Date.now();
    const [silent, answering] = await Promise.all([open(false), open(true)]);
    const closedAt = new Promise<number>((r) => silent.once('close', () => r(Date.now())));
    // keepAliveMs is 200: pinged within 200 ms, cut off one interval after the unanswered ping.
    const ended = await closedAt;
    expect(silentPings).toBe(1);
    expect(ended - started).toBeLessThan(1000);
    // The socket that pongs has been pinged again since, and is still open.
    await new Promise((r) => answering.once('ping', r));
    expect(answering.readyState).toBe(WebSocket.OPEN);
    answering.close();
  });

  it('closes a socket that sends an oversized message (1009)', async () => {
    const socket = new WebSocket(limited.wsUrl, 'graphql-transport-ws');
    await new Promise((r) => socket.once('open', r));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { junk: 'x'.repeat(10_000) } }));
    const code = await new Promise<number>((r) => socket.once('close', (c) => r(c)));
    expect(code).toBe(1009);
  });

  it('refuses more subscriptions per socket than allowed (TOO_MANY_SUBSCRIPTIONS)', async () => {
    const client = limited.wsClient();
    const threadId = await createThread(limited);
    const subs = [1, 2, 3].map(() => collect(client, THREAD_EVENTS, { threadId }));
    await eventually(() => limited.app.services.bus.subscriberCount(`thread:${threadId}`) === 3);
    // graphql-ws reports a refused subscription through the error sink.
    const refused = await collect(client, THREAD_EVENTS, { threadId }).done.then(
      () => undefined,
      (errors: { extensions?: Record<string, unknown> }[]) => errors,
    );
    expect(refused?.[0]?.extensions?.code).toBe('TOO_MANY_SUBSCRIPTIONS');
    for (const s of subs) s.stop();
  });
});

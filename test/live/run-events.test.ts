/**
 * runEvents and threadEvents: a run's status changes, its message and step events, and
 * the text of its message as it is written, in order, resumable mid-message. The engine
 * is driven by hand here (claim, stream pieces, finish), so every interleaving is chosen.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assemble } from '../support/deltas.js';
import { createAssistant, createRun, createThread, newRun, WEATHER_TOOL } from '../support/fixtures.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';
import type { RunRow } from '../../src/db/schema.js';
import { encodeContentCursor, runContentStream, type ContentDelivery } from '../../src/realtime/content-streams.js';
import type { DirectSink } from '../../src/realtime/run-streams.js';
import type { RunHistory } from '../../src/runs/index.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const EVENT_FIELDS = `__typename cursor runId
  ... on RunStatusEvent { status version run { id status version } }
  ... on MessageEvent { kind message { id status text role } }
  ... on MessageDeltaEvent { messageId index text }
  ... on RunStepEvent { step { id type status } }`;
const RUN_EVENTS = `subscription($threadId: ID!, $runId: ID!, $after: String) { runEvents(threadId: $threadId, runId: $runId, after: $after) { ${EVENT_FIELDS} } }`;
const THREAD_EVENTS = `subscription($threadId: ID!, $after: String) { threadEvents(threadId: $threadId, after: $after) { ${EVENT_FIELDS} } }`;
const USAGE = { promptTokens: 1, completionTokens: 1, totalTokens: 2 };

/** A short name per event: the order specs read best this way. */
function shape(e: any): string {
  switch (e.__typename) {
    case 'RunStatusEvent':
      return e.status;
    case 'MessageEvent':
      return `message ${e.kind}`;
    case 'MessageDeltaEvent':
      return 'delta';
    case 'RunStepEvent':
      return `step ${e.step.type} ${e.step.status}`;
  }
  return e.__typename;
}

const eventsOf = (sub: { events: any[] }, field = 'runEvents') => sub.events.map((r) => r.data[field]);

/** Polls an async condition until it holds (or fails after 5 s). */
async function until(predicate: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Claims the run as a worker would, and opens its message stream. */
async function claim(runId: string): Promise<{ run: RunRow; leaseToken: string }> {
  const claimed = await t.app.engine.claim('spec-worker', 50, 30);
  const run = claimed.find((r) => r.id === runId);
  if (!run?.leaseToken) throw new Error('run not claimed');
  return { run, leaseToken: run.leaseToken };
}

/** A new run followed by a runEvents subscriber (its first event received), then claimed with its message stream open. */
async function followedStreamingRun() {
  const { runId, threadId } = await newRun(t);
  const sub = collect(t.wsClient(), RUN_EVENTS, { threadId, runId });
  await eventually(() => sub.events.length === 1);
  const { run, leaseToken } = await claim(runId);
  const stream = t.app.engine.streamMessage(run, leaseToken);
  return { runId, threadId, sub, run, leaseToken, stream };
}

async function finish(run: RunRow, leaseToken: string, text: string, stream: ReturnType<TestApp['app']['engine']['streamMessage']>) {
  const message = await stream.close();
  return t.app.engine.finishWithMessage(run, leaseToken, { text, usage: USAGE, truncated: false }, USAGE, message);
}

async function readMessages(threadId: string) {
  const data = await t.ok<any>(`query($id: ID!) { thread(id: $id) { messages(first: 10) { edges { node { role status text } } } } }`, {
    id: threadId,
  });
  return data.thread.messages.edges.map((e: any) => e.node);
}

describe('runEvents while the answer streams', () => {
  it('delivers the run, its step and message events and the text in order; the deltas make the final text', async () => {
    const { threadId, sub, run, leaseToken, stream } = await followedStreamingRun();
    const pieces = ['Hello', ', ', 'world ', '👩‍👩‍👧‍👦', ' 🎉', ' 日本語 ', '𝒳'];
    for (const piece of pieces) {
      stream.push(piece);
      await new Promise((r) => setTimeout(r, 5));
    }
    // Readable in the thread as it is written.
    await eventually(() => eventsOf(sub).filter((e) => e.__typename === 'MessageDeltaEvent').length > 0);
    const during = await readMessages(threadId);
    expect(during[0]).toMatchObject({ role: 'ASSISTANT', status: 'IN_PROGRESS' });
    expect(pieces.join('').startsWith(during[0].text)).toBe(true);

    await finish(run, leaseToken, pieces.join(''), stream);
    await sub.done;
    const events = eventsOf(sub);
    const order = events.map(shape).filter((s, i, all) => s !== 'delta' || all[i - 1] !== 'delta');
    expect(order).toEqual([
      'QUEUED',
      'IN_PROGRESS',
      'step MESSAGE_CREATION IN_PROGRESS',
      'message CREATED',
      'delta',
      'message COMPLETED',
      'step MESSAGE_CREATION COMPLETED',
      'COMPLETED',
    ]);
    const completed = events.find((e) => e.kind === 'COMPLETED');
    expect(completed.message).toMatchObject({ status: 'COMPLETED', role: 'ASSISTANT' });
    expect(assemble(events)).toBe(completed.message.text);
    expect(completed.message.text).toBe(pieces.join(''));
    // CREATED shows the message as it was created: no text yet.
    expect(events.find((e) => e.kind === 'CREATED').message).toMatchObject({ status: 'IN_PROGRESS', text: '' });
  });

  it('keeps a surrogate pair whole when it arrives in two pieces', async () => {
    const { sub, run, leaseToken, stream } = await followedStreamingRun();
    stream.push('a\ud83c');
    await new Promise((r) => setTimeout(r, 30));
    stream.push('\udf89b');
    await new Promise((r) => setTimeout(r, 30));
    await finish(run, leaseToken, 'a🎉b', stream);
    await sub.done;
    const deltas = eventsOf(sub).filter((e) => e.__typename === 'MessageDeltaEvent');
    for (const d of deltas) expect(d.text.isWellFormed()).toBe(true);
    expect(assemble(eventsOf(sub))).toBe('a🎉b');
  });

  it('without a cursor, starts with the run as it is and the text so far as one delta from index 0', async () => {
    const { runId, threadId } = await newRun(t);
    const { run, leaseToken } = await claim(runId);
    const stream = t.app.engine.streamMessage(run, leaseToken);
    stream.push('The first half, ');
    await until(async () => (await readMessages(threadId))[0]?.text === 'The first half, ');
    const sub = collect(t.wsClient(), RUN_EVENTS, { threadId, runId });
    await eventually(() => sub.events.length === 2);
    expect(eventsOf(sub).slice(0, 2)).toMatchObject([
      { __typename: 'RunStatusEvent', status: 'IN_PROGRESS', run: { status: 'IN_PROGRESS' } },
      { __typename: 'MessageDeltaEvent', index: 0, text: 'The first half, ' },
    ]);
    stream.push('and the second.');
    await finish(run, leaseToken, 'The first half, and the second.', stream);
    await sub.done;
    expect(assemble(eventsOf(sub))).toBe('The first half, and the second.');
    expect(eventsOf(sub).map(shape).slice(-3)).toEqual(['message COMPLETED', 'step MESSAGE_CREATION COMPLETED', 'COMPLETED']);
  });

  it('resumes from a delta cursor mid-message with the rest of the text: no gap, no character twice', async () => {
    const { runId, threadId, sub: first, run, leaseToken, stream } = await followedStreamingRun();
    stream.push('one ');
    await eventually(() => eventsOf(first).some((e) => e.__typename === 'MessageDeltaEvent'));
    first.stop();
    const seen = eventsOf(first);
    const cursor = seen.at(-1).cursor;
    stream.push('two ');
    stream.push('three');
    await until(async () => (await readMessages(threadId))[0]?.text === 'one two three');

    const second = collect(t.wsClient(), RUN_EVENTS, { threadId, runId, after: cursor });
    await eventually(() => second.events.length > 0);
    stream.push(' four');
    await finish(run, leaseToken, 'one two three four', stream);
    await second.done;
    const text = assemble(eventsOf(second), assemble(seen));
    expect(text).toBe('one two three four');
    expect(
      eventsOf(second)
        .map(shape)
        .filter((s) => s !== 'delta'),
    ).toEqual(['message COMPLETED', 'step MESSAGE_CREATION COMPLETED', 'COMPLETED']);
  });

  it("resumed from the run's last event, its terminal status: completes at once, with nothing more", async () => {
    const { runId, threadId, sub: first, run, leaseToken, stream } = await followedStreamingRun();
    stream.push('The end.');
    await finish(run, leaseToken, 'The end.', stream);
    await first.done;
    const last = eventsOf(first).at(-1);
    expect(last).toMatchObject({ __typename: 'RunStatusEvent', status: 'COMPLETED' });
    // A client whose connection dropped between that event and the subscription's end resumes from it.
    const resumed = collect(t.wsClient(), RUN_EVENTS, { threadId, runId, after: last.cursor });
    const outcome = await Promise.race([
      resumed.done.then(() => 'completed'),
      new Promise((resolve) => setTimeout(() => resolve('still open after 2 s'), 2000)),
    ]);
    resumed.stop();
    expect(outcome).toBe('completed');
    expect(resumed.events).toEqual([]);
  });

  it('resumes from the CREATED event with all the text so far, from index 0', async () => {
    const { runId, threadId, sub: first, run, leaseToken, stream } = await followedStreamingRun();
    stream.push('alpha ');
    await eventually(() => eventsOf(first).some((e) => e.kind === 'CREATED'));
    first.stop();
    const created = eventsOf(first).find((e) => e.kind === 'CREATED');
    stream.push('beta');
    await until(async () => (await readMessages(threadId))[0]?.text === 'alpha beta');
    const second = collect(t.wsClient(), RUN_EVENTS, { threadId, runId, after: created.cursor });
    await eventually(() => second.events.length > 0);
    expect(eventsOf(second)[0]).toMatchObject({ __typename: 'MessageDeltaEvent', index: 0, text: 'alpha beta' });
    await finish(run, leaseToken, 'alpha beta', stream);
    await second.done;
    expect(assemble(eventsOf(second))).toBe('alpha beta');
  });

  it('resumed before a message exists, and it begins while the stream reads history: its CREATED first, then its text once', async () => {
    const { runId, threadId } = await newRun(t);
    const { run, leaseToken } = await claim(runId);
    const stream = t.app.engine.streamMessage(run, leaseToken);
    // The message is opened (CREATED and its text committed) just after the stream read the
    // history after its cursor, before it looks for the message being written.
    const history = t.app.services.history;
    let opened = false;
    const racing: RunHistory = Object.create(history);
    racing.contentAfter = async (...args) => {
      const page = await history.contentAfter(...args);
      if (!opened) {
        opened = true;
        stream.push('Hello');
        await until(async () => (await readMessages(threadId))[0]?.text === 'Hello');
      }
      return page;
    };
    const after = encodeContentCursor({ threadSeq: run.threadSeq, version: run.version, sub: 0 });
    const deliveries = await runContentStream({ ...t.app.services, history: racing, projectId: 'default' }, threadId, runId, after);
    const seen: string[] = [];
    let text = '';
    const reading = (async () => {
      for await (const d of deliveries) {
        if ('lagged' in d) throw d.lagged;
        if ('delta' in d) {
          expect(d.delta.index).toBe(text.length);
          text += d.delta.text;
          seen.push('delta');
        } else seen.push('kind' in d.event ? `${d.event.kind} ${'change' in d.event ? d.event.change : d.event.status}` : d.event.status);
      }
    })();
    await until(async () => opened && text.length > 0);
    stream.push(' world');
    await finish(run, leaseToken, 'Hello world', stream);
    await reading;
    expect(seen.filter((s, i) => s !== 'delta' || seen[i - 1] !== 'delta')).toEqual([
      'step in_progress',
      'message created',
      'delta',
      'message completed',
      'step completed',
      'completed',
    ]);
    expect(text).toBe('Hello world');
  });

  it('a cancel mid-stream leaves the message INCOMPLETE with the text so far, then the run CANCELLED', async () => {
    const { runId, threadId, sub, leaseToken, stream } = await followedStreamingRun();
    stream.push('Partial answ');
    await until(async () => (await readMessages(threadId))[0]?.text === 'Partial answ');
    await t.ok(`mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }`, { t: threadId, r: runId });
    // The worker sees the cancel, stops the model and records the end.
    await stream.close();
    await t.app.engine.transition(runId, 'cancelled', {}, { leaseToken, from: ['cancelling'] });
    await sub.done;
    const events = eventsOf(sub);
    expect(events.map(shape).filter((s) => s !== 'delta')).toEqual([
      'QUEUED',
      'IN_PROGRESS',
      'step MESSAGE_CREATION IN_PROGRESS',
      'message CREATED',
      'CANCELLING',
      'message INCOMPLETE',
      'step MESSAGE_CREATION CANCELLED',
      'CANCELLED',
    ]);
    const incomplete = events.find((e) => e.kind === 'INCOMPLETE');
    expect(incomplete.message).toMatchObject({ status: 'INCOMPLETE', text: 'Partial answ' });
    expect(assemble(events)).toBe('Partial answ');
    expect((await readMessages(threadId))[0]).toMatchObject({ status: 'INCOMPLETE', text: 'Partial answ' });
  });
});

describe('runEvents written to a direct sink (the websocket)', () => {
  it('sends each live event that needs nothing read as the bus pushes it; a message end, whose text is re-read, goes through the stream', async () => {
    const { runId, threadId } = await newRun(t);
    const sent: { what: string; live: boolean }[] = [];
    const sink: DirectSink<ContentDelivery> = {
      send(d, live) {
        const what =
          'delta' in d
            ? 'delta'
            : 'kind' in d.event
              ? `${d.event.kind} ${'change' in d.event ? d.event.change : d.event.status}`
              : d.event.status;
        sent.push({ what, live });
        return 'sent';
      },
      room: () => undefined,
    };
    const deliveries = await runContentStream({ ...t.app.services, projectId: 'default', direct: sink }, threadId, runId);
    // With a direct sink the consumer's next() settles only when the stream ends.
    const consumed = (async () => {
      for await (const d of deliveries) throw new Error(`handed to the consumer: ${JSON.stringify(d)}`);
    })();
    await eventually(() => sent.length === 1);
    const { run, leaseToken } = await claim(runId);
    const stream = t.app.engine.streamMessage(run, leaseToken);
    stream.push('Hello');
    await eventually(() => sent.some((s) => s.what === 'delta'));
    stream.push(' world');
    await eventually(() => sent.filter((s) => s.what === 'delta').length === 2);
    await finish(run, leaseToken, 'Hello world', stream);
    await consumed;

    const end = sent.findIndex((s) => s.what === 'message completed');
    // The run as the stream starts from it comes from its first read: not live.
    expect(sent[0]).toEqual({ what: 'queued', live: false });
    expect(sent.slice(1, end)).toEqual([
      { what: 'in_progress', live: true },
      { what: 'step in_progress', live: true },
      { what: 'message created', live: true },
      { what: 'delta', live: true },
      { what: 'delta', live: true },
    ]);
    expect(sent[end]).toEqual({ what: 'message completed', live: false });
    expect(sent.slice(end + 1).map((s) => s.what)).toEqual(['step completed', 'completed']);
  });
});

describe('a run taken over from a worker that stopped mid-message', () => {
  it('ends the message it left INCOMPLETE (its step FAILED) before the new execution writes its own', async () => {
    const { runId, threadId } = await newRun(t);
    const claimed = (await t.app.engine.claim('dying-worker', 50, 1)).find((r) => r.id === runId)!;
    const stream = t.app.engine.streamMessage(claimed, claimed.leaseToken!);
    stream.push('Half of an ans');
    await until(async () => (await readMessages(threadId))[0]?.text === 'Half of an ans');
    // The worker dies (its stream is never closed); its lease lapses.
    await new Promise((r) => setTimeout(r, 1500));
    const sub = collect(t.wsClient(), RUN_EVENTS, { threadId, runId });
    await eventually(() => sub.events.length === 2);
    const [taken] = await t.app.engine.takeOver('next-worker', 1, 30);
    expect(taken?.id).toBe(runId);
    const again = t.app.engine.streamMessage(taken!, taken!.leaseToken!);
    again.push('A whole answer.');
    await finish(taken!, taken!.leaseToken!, 'A whole answer.', again);
    await sub.done;
    const events = eventsOf(sub);
    expect(events.map(shape).filter((s) => s !== 'delta')).toEqual([
      'IN_PROGRESS',
      'message INCOMPLETE',
      'step MESSAGE_CREATION FAILED',
      'step MESSAGE_CREATION IN_PROGRESS',
      'message CREATED',
      'message COMPLETED',
      'step MESSAGE_CREATION COMPLETED',
      'COMPLETED',
    ]);
    // The subscriber had the first message's text so far, then the second's.
    const deltas = events.filter((e) => e.__typename === 'MessageDeltaEvent');
    expect(deltas.map((d) => d.text).join('|')).toBe('Half of an ans|A whole answer.');
    expect((await readMessages(threadId)).slice(0, 2)).toEqual([
      { role: 'ASSISTANT', status: 'COMPLETED', text: 'A whole answer.' },
      { role: 'ASSISTANT', status: 'INCOMPLETE', text: 'Half of an ans' },
    ]);
  });
});

describe('step events of a tool-call run', () => {
  it('the TOOL_CALLS step opens before REQUIRES_ACTION and completes before the run is QUEUED again', async () => {
    const { runId, threadId } = await newRun(t);
    const sub = collect(t.wsClient(), RUN_EVENTS, { threadId, runId });
    await eventually(() => sub.events.length === 1);
    const { run, leaseToken } = await claim(runId);
    const call = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{}' } };
    await t.app.engine.requireAction(run.id, [call], { leaseToken });
    await t.app.services.runs.submitToolOutputs('default', threadId, runId, [{ toolCallId: 'call_1', output: 'sunny' }]);
    const again = await claim(runId);
    const stream = t.app.engine.streamMessage(again.run, again.leaseToken);
    await finish(again.run, again.leaseToken, 'It is sunny.', stream);
    await sub.done;
    expect(
      eventsOf(sub)
        .map(shape)
        .filter((s) => s !== 'delta'),
    ).toEqual([
      'QUEUED',
      'IN_PROGRESS',
      'step TOOL_CALLS IN_PROGRESS',
      'REQUIRES_ACTION',
      'step TOOL_CALLS COMPLETED',
      'QUEUED',
      'IN_PROGRESS',
      'step MESSAGE_CREATION IN_PROGRESS',
      'message CREATED',
      'message COMPLETED',
      'step MESSAGE_CREATION COMPLETED',
      'COMPLETED',
    ]);
    // A message written in one go still comes as CREATED, its text, COMPLETED.
    expect(assemble(eventsOf(sub))).toBe('It is sunny.');
  });
});

describe('threadEvents', () => {
  it('follows every run of the thread in order, and resumes from any cursor', async () => {
    const assistantId = await createAssistant(t, { tools: [WEATHER_TOOL] });
    const threadId = await createThread(t);
    const sub = collect(t.wsClient(), THREAD_EVENTS, { threadId });
    await new Promise((r) => setTimeout(r, 100));
    for (const answer of ['first answer', 'second answer']) {
      const created = await createRun(t, threadId, { assistantId });
      const { run, leaseToken } = await claim(created.id);
      const stream = t.app.engine.streamMessage(run, leaseToken);
      stream.push(answer);
      await new Promise((r) => setTimeout(r, 20));
      await finish(run, leaseToken, answer, stream);
    }
    await eventually(() => eventsOf(sub, 'threadEvents').filter((e) => e.status === 'COMPLETED').length === 2);
    sub.stop();
    const all = eventsOf(sub, 'threadEvents');
    expect(all.map(shape).filter((s) => s !== 'delta')).toEqual(
      Array(2)
        .fill([
          'QUEUED',
          'IN_PROGRESS',
          'step MESSAGE_CREATION IN_PROGRESS',
          'message CREATED',
          'message COMPLETED',
          'step MESSAGE_CREATION COMPLETED',
          'COMPLETED',
        ])
        .flat(),
    );
    // From each event's cursor, the rest is exactly what followed it (text included).
    for (const at of [1, 3, 5, 9]) {
      const resumed = collect(t.wsClient(), THREAD_EVENTS, { threadId, after: all[at].cursor });
      const expected = all.slice(at + 1).map(shape);
      await eventually(() => resumed.events.length >= expected.length).catch(() => {
        throw new Error(
          `from ${at}: ${JSON.stringify(eventsOf(resumed, 'threadEvents').map(shape))} vs ${JSON.stringify(expected)} ${JSON.stringify(resumed.events.slice(0, 1))}`,
        );
      });
      resumed.stop();
      expect(eventsOf(resumed, 'threadEvents').map(shape)).toEqual(expected);
    }
  });

  it('without a cursor, starts with the latest run as it is', async () => {
    const { runId, threadId } = await newRun(t);
    const sub = collect(t.wsClient(), THREAD_EVENTS, { threadId });
    await eventually(() => sub.events.length === 1);
    sub.stop();
    expect(eventsOf(sub, 'threadEvents')[0]).toMatchObject({ __typename: 'RunStatusEvent', runId, status: 'QUEUED' });
  });

  it("answers NOT_FOUND for another project's thread, and BAD_USER_INPUT for a cursor that is not one", async () => {
    const threadId = await createThread(t);
    const bad = collect(t.wsClient(), THREAD_EVENTS, { threadId, after: 'nope' });
    const missing = collect(t.wsClient(), THREAD_EVENTS, { threadId: 'thread_missing' });
    await eventually(() => bad.events.length > 0 && missing.events.length > 0);
    expect((bad.events[0] as any).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect((missing.events[0] as any).errors[0].extensions.code).toBe('NOT_FOUND');
  });
});

describe('RunStatusEvent.run', () => {
  it('is the run as that change left it, even when delivered later', async () => {
    const { runId } = await newRun(t);
    const { run, leaseToken } = await claim(runId);
    const stream = t.app.engine.streamMessage(run, leaseToken);
    await finish(run, leaseToken, 'done', stream);
    // Replayed from history after the run completed: each event carries its own state.
    const sub = collect(
      t.wsClient(),
      `subscription($runId: ID!) { runStatusChanged(runId: $runId, afterVersion: 0) { version status run { id status version startedAt completedAt usage { totalTokens } } } }`,
      { runId },
    );
    await sub.done;
    const events = sub.events.map((r: any) => r.data.runStatusChanged);
    expect(events.map((e) => [e.version, e.status, e.run.version, e.run.status])).toEqual([
      [1, 'QUEUED', 1, 'QUEUED'],
      [2, 'IN_PROGRESS', 2, 'IN_PROGRESS'],
      [3, 'COMPLETED', 3, 'COMPLETED'],
    ]);
    expect(events[0].run).toMatchObject({ startedAt: null, completedAt: null, usage: null });
    expect(events[1].run.startedAt).toEqual(expect.any(Number));
    expect(events[1].run.completedAt).toBeNull();
    expect(events[2].run).toMatchObject({ completedAt: expect.any(Number), usage: { totalTokens: 2 } });
  });
});

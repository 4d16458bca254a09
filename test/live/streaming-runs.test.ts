/**
 * Runs executed by the worker stream their answer: the scripted model speaks one token
 * per piece (at `pace <ms>`), and a subscriber sees it arrive as deltas that add up to
 * the message, however and wherever it resumes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assemble } from '../support/deltas.js';
import { createAssistant, createRun } from '../support/fixtures.js';
import { collect, eventually, startTestApp, type TestApp } from '../support/test-app.js';
import { countTokens } from '../../src/engine/tokens.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t?.close();
});

const EVENT_FIELDS = `__typename cursor runId
  ... on RunStatusEvent { status }
  ... on MessageEvent { kind message { status text } }
  ... on MessageDeltaEvent { messageId index text }`;
const THREAD_EVENTS = `subscription($threadId: ID!, $after: String) { threadEvents(threadId: $threadId, after: $after) { ${EVENT_FIELDS} } }`;

const QUESTION = 'pace 5\nTell me: 👩‍👩‍👧‍👦 families, 🎉 parties, 日本語, 𝒳 and plain words.';
const ANSWER = `echo: ${QUESTION}`;

async function newThread(content: string, app: TestApp = t) {
  const data = await app.ok<any>('mutation($m: String!) { createThread(input: { messages: [{ role: USER, content: $m }] }) { id } }', {
    m: content,
  });
  return data.createThread.id as string;
}

describe('a scripted run with a pace', () => {
  it('arrives token by token; the deltas make the completed message exactly', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await newThread(QUESTION);
    const sub = collect(t.wsClient(), THREAD_EVENTS, { threadId });
    await new Promise((r) => setTimeout(r, 100));
    await createRun(t, threadId, { assistantId });
    await eventually(() => sub.events.some((e: any) => e.data.threadEvents.status === 'COMPLETED'), 10_000);
    sub.stop();
    const events = sub.events.map((e: any) => e.data.threadEvents);
    const completed = events.find((e) => e.kind === 'COMPLETED');
    expect(completed.message).toEqual({ status: 'COMPLETED', text: ANSWER });
    expect(assemble(events)).toBe(ANSWER);
    // Paced: the text came in many deltas (one per token, fewer where a write took several).
    const deltas = events.filter((e) => e.__typename === 'MessageDeltaEvent');
    expect(deltas.length).toBeGreaterThan(5);
    expect(deltas.length).toBeLessThanOrEqual(await countTokens(ANSWER));
  });

  it('a subscriber that drops and resumes from its last cursor, at random points, always ends with the exact text', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await newThread(QUESTION);
    let received: any[] = [];
    let cursor: string | undefined;
    const watch = () => collect(t.wsClient(), THREAD_EVENTS, { threadId, after: cursor });
    let sub = watch();
    await new Promise((r) => setTimeout(r, 100));
    await createRun(t, threadId, { assistantId });
    // From the first event on, every drop leaves a cursor to resume from.
    await eventually(() => sub.events.length > 0);
    let resumes = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 25));
      const events = sub.events.map((e: any) => e.data.threadEvents);
      sub.stop();
      received = received.concat(events);
      if (events.length > 0) cursor = events.at(-1).cursor;
      if (received.some((e) => e.status === 'COMPLETED')) break;
      sub = watch();
      resumes++;
    }
    expect(resumes).toBeGreaterThan(3);
    expect(assemble(received)).toBe(ANSWER);
    expect(received.map((e) => e.kind ?? e.status).filter(Boolean)).toEqual(['QUEUED', 'IN_PROGRESS', 'CREATED', 'COMPLETED', 'COMPLETED']);
  });

  it('cancelled mid-stream: the message ends INCOMPLETE with the text so far, the run CANCELLED', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await newThread(`pace 50\n${'a long answer '.repeat(20)}`);
    const sub = collect(t.wsClient(), THREAD_EVENTS, { threadId });
    await new Promise((r) => setTimeout(r, 100));
    const run = await createRun(t, threadId, { assistantId });
    await eventually(() => sub.events.filter((e: any) => e.data.threadEvents.__typename === 'MessageDeltaEvent').length >= 3, 10_000);
    await t.ok('mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { status } }', { t: threadId, r: run.id });
    await eventually(() => sub.events.some((e: any) => e.data.threadEvents.status === 'CANCELLED'), 10_000);
    sub.stop();
    const events = sub.events.map((e: any) => e.data.threadEvents);
    const incomplete = events.find((e) => e.kind === 'INCOMPLETE');
    expect(incomplete.message.status).toBe('INCOMPLETE');
    expect(incomplete.message.text.length).toBeGreaterThan(0);
    expect(`echo: pace 50\n${'a long answer '.repeat(20)}`.startsWith(incomplete.message.text)).toBe(true);
    expect(assemble(events)).toBe(incomplete.message.text);
    expect(
      events
        .map((e) => e.kind ?? e.status)
        .filter(Boolean)
        .slice(-3),
    ).toEqual(['CANCELLING', 'INCOMPLETE', 'CANCELLED']);
  });
});

describe('an answer that is ready at once (no pace)', () => {
  it("is written by the run's finish alone: no statement to open or append to its message", async () => {
    const sent: string[] = [];
    const counted = await startTestApp({ worker: true, onQuery: (sql) => sent.push(sql) });
    try {
      const assistantId = await createAssistant(counted);
      const threadId = await newThread('Hello 🎉', counted);
      const sub = collect(counted.wsClient(), THREAD_EVENTS, { threadId });
      await new Promise((r) => setTimeout(r, 100));
      sent.length = 0;
      await createRun(counted, threadId, { assistantId });
      await eventually(() => sub.events.some((e: any) => e.data.threadEvents.status === 'COMPLETED'), 10_000);
      sub.stop();
      const events = sub.events.map((e: any) => e.data.threadEvents);
      expect(assemble(events)).toBe('echo: Hello 🎉');
      expect(events.map((e) => e.kind ?? e.status).filter(Boolean)).toEqual(['QUEUED', 'IN_PROGRESS', 'CREATED', 'COMPLETED', 'COMPLETED']);
      expect(sent.filter((s) => /insert into messages \(id, thread_id, created_at, role, content, status/.test(s))).toEqual([]);
      expect(sent.filter((s) => /update messages m set content/.test(s))).toEqual([]);
      // The text sent before the message's end resumes before that end, not past it.
      const delta = events.find((e) => e.__typename === 'MessageDeltaEvent');
      const resumed = collect(counted.wsClient(), THREAD_EVENTS, { threadId, after: delta.cursor });
      await eventually(() => resumed.events.some((e: any) => e.data.threadEvents.status === 'COMPLETED'));
      resumed.stop();
      expect(resumed.events.map((e: any) => e.data.threadEvents.kind ?? e.data.threadEvents.status).filter(Boolean)).toEqual([
        'COMPLETED',
        'COMPLETED',
      ]);
    } finally {
      await counted.close();
    }
  });
});

describe('a subscriber that follows a run from before its answer', () => {
  it('gets the message, its text and its end from what is announced, in order: no read of history, whichever transport carries it', async () => {
    const sent: string[] = [];
    const counted = await startTestApp({ worker: true, onQuery: (sql) => sent.push(sql) });
    try {
      const assistantId = await createAssistant(counted);
      const content = `sleep 300\npace 5\n${'a paced answer '.repeat(4)}`;
      const threadId = await newThread(content, counted);
      const run = await createRun(counted, threadId, { assistantId });
      const sub = collect(counted.wsClient(), `subscription($t: ID!, $r: ID!) { runEvents(threadId: $t, runId: $r) { ${EVENT_FIELDS} } }`, {
        t: threadId,
        r: run.id,
      });
      // In progress (the model "thinks" 300 ms): the message opens after this, its CREATED
      // and first text in one announcement, relayed or not.
      await eventually(() => sub.events.some((e: any) => e.data.runEvents.status === 'IN_PROGRESS'), 10_000);
      sent.length = 0;
      await eventually(() => sub.events.some((e: any) => e.data.runEvents.status === 'COMPLETED'), 10_000);
      sub.stop();
      const events = sub.events.map((e: any) => e.data.runEvents);
      expect(assemble(events)).toBe(`echo: ${content}`);
      expect(events.filter((e) => e.__typename === 'MessageDeltaEvent').length).toBeGreaterThan(3);
      // History is read where something announced is missing or out of order: never here.
      expect(sent.filter((s) => /^select .* from "(run_events|run_item_events)"/s.test(s))).toEqual([]);
    } finally {
      await counted.close();
    }
  });
});

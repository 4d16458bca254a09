/**
 * Deleting a thread, a message or an assistant removes their data from every table: each
 * check reads every table of the schema (drizzle's list of them, so a table added later is
 * checked too) for any row that still mentions the deleted object's id, in any column.
 *
 * What stays on purpose, as in the Assistants API: a deleted assistant's runs, and the
 * messages and steps they wrote, belong to their threads and keep its id (a run of it that
 * is under way finishes); a deleted message stays named by the run step that wrote it. A thread with an active run is not deleted (THREAD_HAS_ACTIVE_RUN)
 * until that run is cancelled or ends.
 */
import { getTableConfig, PgTable } from 'drizzle-orm/pg-core';
import { inArray, is, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.js';
import * as schema from '../../src/db/schema.js';
import { unixNow } from '../../src/app.js';
import { pruneExpiredEvents } from '../../src/runs/retention.js';
import { createAssistant } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  // Retention is run by hand below (a history floor is data of its thread too).
  t = await startTestApp({ worker: true, runEventsRetentionDays: 0 });
});
afterAll(async () => {
  await t?.close();
});

const TABLES = (Object.values(schema) as unknown[])
  .filter((value): value is PgTable => is(value, PgTable))
  .map((table) => getTableConfig(table).name)
  .sort();

/** The tables with rows that mention `id` in any column (a row read as text), and how many. */
async function rowsMentioning(id: string): Promise<Record<string, number>> {
  const found: Record<string, number> = {};
  for (const table of TABLES) {
    const [row] = await rowsOf<{ n: number | string }>(
      t.app.database.db,
      sql`select count(*) as n from ${sql.identifier(table)} r where strpos(r::text, ${id}) > 0`,
    );
    if (Number(row!.n) > 0) found[table] = Number(row!.n);
  }
  return found;
}

let keys = 0;
const key = () => `deletion-spec-${++keys}`;

async function waitForStatus(threadId: string, runId: string, wanted: string[]): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const data = await t.ok<any>('query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status } }', { t: threadId, r: runId });
    if (wanted.includes(data.run.status)) return data.run.status;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`run ${runId} never reached ${wanted.join('/')}`);
}

async function startRun(threadId: string, assistantId: string, content: string): Promise<string> {
  await t.ok(
    'mutation($t: ID!, $c: String!, $k: String) { createMessage(threadId: $t, input: { role: USER, content: $c }, idempotencyKey: $k) { id } }',
    {
      t: threadId,
      c: content,
      k: key(),
    },
  );
  const data = await t.ok<any>(
    'mutation($t: ID!, $a: ID!, $k: String) { createRun(threadId: $t, input: { assistantId: $a }, idempotencyKey: $k) { id } }',
    {
      t: threadId,
      a: assistantId,
      k: key(),
    },
  );
  return data.createRun.id;
}

/** A thread with everything a thread can have: messages, a run with tool calls and outputs, steps, events, idempotency keys, a pruned history. */
async function fullThread(assistantId: string): Promise<{ threadId: string; runIds: string[] }> {
  const created = await t.ok<any>(
    'mutation($k: String) { createThread(input: { messages: [{ role: USER, content: "Hello" }], metadata: { kept: "no" } }, idempotencyKey: $k) { id } }',
    { k: key() },
  );
  const threadId = created.createThread.id as string;
  const tools = await startRun(threadId, assistantId, 'call get_weather {"city": "Paris"}');
  await waitForStatus(threadId, tools, ['REQUIRES_ACTION']);
  const action = await t.ok<any>(
    'query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { requiredAction { submitToolOutputs { toolCalls { id } } } } }',
    {
      t: threadId,
      r: tools,
    },
  );
  const callId = action.run.requiredAction.submitToolOutputs.toolCalls[0].id;
  await t.ok(
    'mutation($t: ID!, $r: ID!, $c: ID!, $k: String) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: [{ toolCallId: $c, output: "sunny" }], idempotencyKey: $k) { id } }',
    {
      t: threadId,
      r: tools,
      c: callId,
      k: key(),
    },
  );
  await waitForStatus(threadId, tools, ['COMPLETED']);
  const plain = await startRun(threadId, assistantId, 'Tell me more');
  await waitForStatus(threadId, plain, ['COMPLETED']);
  // The first run ended long ago: its history is pruned, and the thread gets a history floor.
  await t.app.database.db
    .update(schema.runEvents)
    .set({ at: sql`${schema.runEvents.at} - ${400 * 86_400}` })
    .where(inArray(schema.runEvents.runId, [tools]));
  await pruneExpiredEvents(t.app.database.db, { retentionDays: 30, now: unixNow() });
  return { threadId, runIds: [tools, plain] };
}

describe('deleting', () => {
  it('checks every table of the schema', () => {
    expect(TABLES).toEqual(
      expect.arrayContaining(['assistants', 'threads', 'messages', 'runs', 'run_events', 'run_item_events', 'run_steps']),
    );
    expect(TABLES).toEqual(expect.arrayContaining(['api_keys', 'idempotency_keys', 'event_outbox', 'event_history_floors']));
  });

  it('a thread removes every row of it, once its active run has ended; other threads keep theirs', async () => {
    const assistantId = await createAssistant(t);
    const { threadId, runIds } = await fullThread(assistantId);
    const other = await fullThread(assistantId);
    const otherRows = await rowsMentioning(other.threadId);

    const before = await rowsMentioning(threadId);
    expect(Object.keys(before).sort()).toEqual(
      ['event_history_floors', 'idempotency_keys', 'messages', 'run_events', 'run_item_events', 'run_steps', 'runs', 'threads'].sort(),
    );
    const messageIds = (
      await t.app.database.db
        .select({ id: schema.messages.id })
        .from(schema.messages)
        .where(sql`thread_id = ${threadId}`)
    ).map((m) => m.id);
    const stepIds = (
      await t.app.database.db.select({ id: schema.runSteps.id }).from(schema.runSteps).where(inArray(schema.runSteps.runId, runIds))
    ).map((s) => s.id);
    expect(stepIds.length).toBeGreaterThanOrEqual(3);

    // A run under way holds the thread: the delete is refused until it is cancelled.
    const active = await startRun(threadId, assistantId, 'sleep 60000');
    await waitForStatus(threadId, active, ['IN_PROGRESS']);
    const refused = await t.gql('mutation($t: ID!) { deleteThread(threadId: $t) { deleted } }', { t: threadId });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'THREAD_HAS_ACTIVE_RUN', runId: active });
    await t.ok('mutation($t: ID!, $r: ID!) { cancelRun(threadId: $t, runId: $r) { id } }', { t: threadId, r: active });
    await waitForStatus(threadId, active, ['CANCELLED']);

    const done = await t.ok<any>('mutation($t: ID!) { deleteThread(threadId: $t) { id object deleted } }', { t: threadId });
    expect(done.deleteThread).toEqual({ id: threadId, object: 'thread.deleted', deleted: true });
    for (const id of [threadId, ...runIds, active, ...messageIds, ...stepIds])
      expect({ id, rows: await rowsMentioning(id) }).toEqual({ id, rows: {} });
    expect(await rowsMentioning(other.threadId)).toEqual(otherRows);
  });

  it('a message removes it, its events and its idempotency key; only the step that recorded its creation still names it', async () => {
    const assistantId = await createAssistant(t);
    const { threadId, runIds } = await fullThread(assistantId);
    const data = await t.ok<any>('query($t: ID!) { thread(id: $t) { messages(order: ASC) { nodes { id role runId } } } }', { t: threadId });
    const nodes: any[] = data.thread.messages.nodes;
    const answer = nodes.find((m) => m.role === 'ASSISTANT' && m.runId === runIds[1]);
    const question = nodes.filter((m) => m.role === 'USER').at(-1);
    expect(Object.keys(await rowsMentioning(answer.id)).sort()).toEqual(['messages', 'run_item_events', 'run_steps']);
    expect(Object.keys(await rowsMentioning(question.id)).sort()).toEqual(['idempotency_keys', 'messages']);

    for (const message of [answer, question]) {
      const done = await t.ok<any>('mutation($t: ID!, $m: ID!) { deleteMessage(threadId: $t, messageId: $m) { id object deleted } }', {
        t: threadId,
        m: message.id,
      });
      expect(done.deleteMessage).toEqual({ id: message.id, object: 'thread.message.deleted', deleted: true });
    }
    // As in the Assistants API, the run's MESSAGE_CREATION step keeps the id of what it wrote.
    expect(await rowsMentioning(answer.id)).toEqual({ run_steps: 1 });
    expect(await rowsMentioning(question.id)).toEqual({});
    // The thread and its runs stay.
    expect((await rowsMentioning(threadId)).runs).toBe(2);
  });

  it('an assistant removes it and its idempotency key; its runs stay with their threads, and one under way finishes', async () => {
    const created = await t.ok<any>(
      'mutation($k: String) { createAssistant(input: { model: "scripted", name: "gone soon" }, idempotencyKey: $k) { id } }',
      { k: key() },
    );
    const assistantId = created.createAssistant.id as string;
    const threadId = (await t.ok<any>('mutation { createThread(input: {}) { id } }')).createThread.id as string;
    const finished = await startRun(threadId, assistantId, 'Hi');
    await waitForStatus(threadId, finished, ['COMPLETED']);
    const running = await startRun(threadId, assistantId, 'sleep 1500');
    await waitForStatus(threadId, running, ['IN_PROGRESS']);
    expect(Object.keys(await rowsMentioning(assistantId))).toContain('idempotency_keys');

    const done = await t.ok<any>('mutation($a: ID!) { deleteAssistant(assistantId: $a) { id object deleted } }', { a: assistantId });
    expect(done.deleteAssistant).toEqual({ id: assistantId, object: 'assistant.deleted', deleted: true });
    expect(await waitForStatus(threadId, running, ['COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED', 'INCOMPLETE'])).toBe('COMPLETED');
    // What still names it: the runs made from it and the messages and steps they wrote, in their thread.
    expect(Object.keys(await rowsMentioning(assistantId)).sort()).toEqual(['messages', 'run_steps', 'runs']);
    expect((await rowsMentioning(assistantId)).runs).toBe(2);
    const gone = await t.gql('query($a: ID!) { assistant(id: $a) { id } }', { a: assistantId });
    expect(gone.data).toEqual({ assistant: null });
  });
});

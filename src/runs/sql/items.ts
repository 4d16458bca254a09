/**
 * What happens inside a run: its item events (a message created, completed or left
 * incomplete; a step's status change), the assistant message it writes as the model
 * streams (opened at the first piece, appended to, ended), and the items it leaves open
 * when it ends.
 *
 * An item event goes after the run's latest status event: at (version, sub) with sub the
 * next free one of that version. Every statement that writes one holds the run's row lock
 * (it moved the run, or locks it), so positions follow the order of commits.
 */
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { rowsOf, type Db, type Executor } from '../../db/client.js';
import { jsonParam } from '../../db/json-param.js';
import { rowRead } from '../../db/row-reads.js';
import { messages, runItemEvents, runs, runSteps, type MessageRow, type RunRow } from '../../db/schema.js';
import type { RunStatusEvent } from '../../domain/run.js';
import type { EventPosition, ItemEvent, MessageChange, StepStatus } from '../../domain/run-events.js';
import { openStepsEnd, type RunStatus } from '../../domain/run-lifecycle.js';
import type { AnnounceEvents } from './changes.js';

/** An item event to write: what changed, and the run it belongs to. */
export type ItemChange = { kind: 'message'; itemId: string; change: MessageChange } | { kind: 'step'; itemId: string; change: StepStatus };

type ItemRow = typeof runItemEvents.$inferSelect;

export function itemEventOf(row: ItemRow): ItemEvent {
  const base = { runId: row.runId, threadId: row.threadId, threadSeq: row.threadSeq, version: row.version, sub: row.sub, at: row.at };
  return row.kind === 'message'
    ? { ...base, kind: 'message', messageId: row.itemId, change: row.change as MessageChange }
    : { ...base, kind: 'step', stepId: row.itemId, status: row.change as StepStatus };
}

/**
 * Writes these item events of one run after its events of `version` (in a transaction that
 * holds the run's row lock) and returns them, to be announced with the commit.
 */
export async function insertItemEvents(
  ex: Executor,
  run: Pick<RunRow, 'id' | 'threadId' | 'threadSeq'>,
  version: number,
  changes: readonly ItemChange[],
  at: number,
): Promise<ItemEvent[]> {
  if (changes.length === 0) return [];
  const rows = await rowsOf<ItemRow & { run_id: string }>(
    ex,
    sql`insert into run_item_events (run_id, version, sub, thread_id, thread_seq, kind, item_id, change, at)
      select ${run.id}, ${version},
        coalesce((select max(e.sub) from run_item_events e where e.run_id = ${run.id} and e.version = ${version}), 0) + c.n,
        ${run.threadId}, ${run.threadSeq}, c.kind, c.item_id, c.change, ${at}::bigint
      from jsonb_to_recordset(${jsonParam(changes.map((c, i) => ({ n: i + 1, kind: c.kind, item_id: c.itemId, change: c.change })))}::jsonb)
        as c(n integer, kind text, item_id text, change text)
      returning run_id as "runId", version, sub, thread_id as "threadId", thread_seq as "threadSeq", kind, item_id as "itemId", change, at`,
  );
  return rows.map((r) => itemEventOf({ ...r, at: Number(r.at) }));
}

/**
 * When runs end, what they left open ends with them, as the lifecycle says: open steps
 * get the end status, an in-progress message becomes incomplete (with the text it has),
 * each with its event, placed before the run's final status change. `moved` are the runs
 * as the transition left them (in this transaction, which holds their row locks).
 */
export async function closeOpenItems(ex: Executor, moved: readonly RunRow[], runStatus: RunStatus, at: number): Promise<ItemEvent[]> {
  const end = openStepsEnd(runStatus);
  if (!end || moved.length === 0) return [];
  const runIds = moved.map((r) => r.id);
  const steps = await ex
    .update(runSteps)
    .set({ status: end.status, [end.stamp]: at })
    .where(and(inArray(runSteps.runId, runIds), eq(runSteps.status, 'in_progress')))
    .returning({ id: runSteps.id, runId: runSteps.runId });
  const left = await ex
    .update(messages)
    .set({ status: 'incomplete' })
    .where(and(inArray(messages.runId, runIds), eq(messages.status, 'in_progress')))
    .returning({ id: messages.id, runId: messages.runId });
  if (steps.length === 0 && left.length === 0) return [];
  const events: ItemEvent[] = [];
  for (const run of moved) {
    const changes: ItemChange[] = [
      ...left.filter((m) => m.runId === run.id).map((m) => ({ kind: 'message' as const, itemId: m.id, change: 'incomplete' as const })),
      ...steps.filter((s) => s.runId === run.id).map((s) => ({ kind: 'step' as const, itemId: s.id, change: end.status })),
    ];
    events.push(...(await insertItemEvents(ex, run, run.version - 1, changes, at)));
  }
  return events;
}

/**
 * Every durable event after a position, status events and item events, each list in order
 * and at most `limit` long: one statement, so one snapshot (read apart, a commit landing
 * between the reads, a claim writing a run's IN_PROGRESS and its step's start together,
 * could show a version's items without its status), and one round trip.
 */
export async function eventsAfter(
  ex: Executor,
  scope: { runId: string } | { threadId: string },
  after: EventPosition,
  limit: number,
): Promise<{ statuses: RunStatusEvent[]; items: ItemEvent[] }> {
  const run = 'runId' in scope;
  const statusesAfter = run
    ? sql`run_id = ${scope.runId} and version > ${after.version}`
    : sql`thread_id = ${scope.threadId} and (thread_seq, version) > (${after.threadSeq}, ${after.version})`;
  const itemsAfter = run
    ? sql`run_id = ${scope.runId} and (version, sub) > (${after.version}, ${after.sub})`
    : sql`thread_id = ${scope.threadId} and (thread_seq, version, sub) > (${after.threadSeq}, ${after.version}, ${after.sub})`;
  const statusOrder = run ? sql`version` : sql`thread_seq, version`;
  const itemOrder = run ? sql`version, sub` : sql`thread_seq, version, sub`;
  // As JSON text, parsed here: the same on both drivers, whatever their parsers.
  const [row] = await rowsOf<{ statuses: string; items: string }>(
    ex,
    sql`select
      (select coalesce(json_agg(json_build_object('runId', run_id, 'threadId', thread_id, 'threadSeq', thread_seq,
          'version', version, 'previousStatus', from_status, 'status', to_status, 'at', at) order by ${statusOrder}), '[]')::text
        from (select * from run_events where ${statusesAfter} order by ${statusOrder} limit ${limit}) e) as statuses,
      (select coalesce(json_agg(json_build_object('runId', run_id, 'version', version, 'sub', sub, 'threadId', thread_id,
          'threadSeq', thread_seq, 'kind', kind, 'itemId', item_id, 'change', change, 'at', at) order by ${itemOrder}), '[]')::text
        from (select * from run_item_events where ${itemsAfter} order by ${itemOrder} limit ${limit}) i) as items`,
  );
  return {
    statuses: row ? (JSON.parse(row.statuses) as RunStatusEvent[]) : [],
    items: row ? (JSON.parse(row.items) as ItemRow[]).map(itemEventOf) : [],
  };
}

const messageById = rowRead(messages, (db) =>
  db
    .select()
    .from(messages)
    .where(eq(messages.id, sql.placeholder('messageId')))
    .limit(1),
);

/** A message, for the events about it (a row read: every subscriber of a run reads it as the message ends). */
export async function findMessage(db: Db, messageId: string): Promise<MessageRow | undefined> {
  const [row] = await messageById(db, { messageId });
  return row;
}

/** A message opened at its run's first piece of text. */
export interface MessageStart {
  runId: string;
  leaseToken: string;
  messageId: string;
  stepId: string;
  /** The text so far. */
  content: string;
  /** Its delta line, announced with the message's events (null: nothing to announce in the statement). */
  line: string | null;
}

/**
 * Opens the assistant messages of runs that began to answer: each gets its message
 * (in_progress, holding the text so far), its MESSAGE_CREATION step (in_progress), and
 * their events, announced as the statement commits with the text's delta. Only runs still
 * in_progress under the caller's claim are opened; returns the ids of those that were.
 */
export async function startMessages(
  ex: Executor,
  announce: AnnounceEvents,
  starts: readonly MessageStart[],
  at: number,
): Promise<Set<string>> {
  const input = jsonParam(
    starts.map((s) => ({
      run_id: s.runId,
      lease_token: s.leaseToken,
      message_id: s.messageId,
      step_id: s.stepId,
      content: s.content,
      line: s.line,
    })),
  );
  const items = {
    kind: sql`i.kind`,
    runId: sql`i.run_id`,
    threadId: sql`i.thread_id`,
    threadSeq: sql`i.thread_seq`,
    version: sql`i.version`,
    sub: sql`i.sub`,
    itemId: sql`i.item_id`,
    change: sql`i.change`,
    at: sql`i.at`,
  };
  const lines = sql`(select string_agg(l.line, E'\\n' order by l.run_id, l.version, l.sub) from (
      select ${announce.itemLine(items)} as line, i.run_id, i.version, i.sub from i
      union all
      select r.line, r.id, r.version, 2147483647 from r where r.line is not null
    ) l)`;
  const rows = await rowsOf<{ id: string }>(
    ex,
    sql`with d as (
        select * from jsonb_to_recordset(${input}::jsonb)
          as d(run_id text, lease_token uuid, message_id text, step_id text, content text, line text)
      ),
      r as (
        select runs.id, runs.thread_id, runs.thread_seq, runs.version, runs.assistant_id, d.message_id, d.step_id, d.content, d.line
        from runs join d on runs.id = d.run_id
        where runs.lease_token = d.lease_token and runs.status = 'in_progress'
        order by runs.id
        for update of runs
      ),
      m as (
        insert into messages (id, thread_id, created_at, role, content, status, run_id, assistant_id, metadata)
        select message_id, thread_id, ${at}::bigint, 'assistant', content, 'in_progress', id, assistant_id, '{}'::jsonb from r
        returning id
      ),
      s as (
        insert into run_steps (id, run_id, thread_id, assistant_id, created_at, type, status, step_details)
        select step_id, id, thread_id, assistant_id, ${at}::bigint, 'message_creation', 'in_progress',
          jsonb_build_object('type', 'message_creation', 'messageCreation', jsonb_build_object('messageId', message_id))
        from r
        returning id
      ),
      i as (
        insert into run_item_events (run_id, version, sub, thread_id, thread_seq, kind, item_id, change, at)
        select r.id, r.version,
          coalesce((select max(e.sub) from run_item_events e where e.run_id = r.id and e.version = r.version), 0) + v.n,
          r.thread_id, r.thread_seq, v.kind, case when v.kind = 'step' then r.step_id else r.message_id end, v.change, ${at}::bigint
        from r cross join (values (1, 'step', 'in_progress'), (2, 'message', 'created')) as v(n, kind, change)
        returning *
      )
      select r.id, (select ${announce.inStatement(lines)}) as announced from r`,
  );
  return new Set(rows.map((r) => r.id));
}

/** Text appended to an open message. */
export interface TextAppend {
  runId: string;
  leaseToken: string;
  messageId: string;
  text: string;
}

/**
 * Appends each piece to its message, while the message is in_progress and its run under
 * the caller's claim (its deltas were announced already). Returns the messages appended to.
 */
export async function appendText(ex: Executor, appends: readonly TextAppend[]): Promise<Set<string>> {
  const input = jsonParam(appends.map((a) => ({ message_id: a.messageId, run_id: a.runId, lease_token: a.leaseToken, text: a.text })));
  const rows = await rowsOf<{ id: string }>(
    ex,
    sql`with d as (
        select * from jsonb_to_recordset(${input}::jsonb) as d(message_id text, run_id text, lease_token uuid, text text)
      )
      update messages m set content = m.content || d.text
      from d join runs r on r.id = d.run_id and r.lease_token = d.lease_token
      where m.id = d.message_id and m.status = 'in_progress'
      returning m.id`,
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * Ends a message opened as the answer streamed, completed as it stands, with its step,
 * when the run moved on without a finish (to requires_action: the model called tools
 * after some text). In the transaction that moved the run.
 */
export async function endStreamedMessage(
  ex: Executor,
  moved: RunRow,
  message: { messageId: string; stepId: string },
  at: number,
): Promise<ItemEvent[]> {
  const ended = await ex
    .update(messages)
    .set({ status: 'completed' })
    .where(and(eq(messages.id, message.messageId), eq(messages.status, 'in_progress')))
    .returning({ id: messages.id });
  if (ended.length === 0) return [];
  await ex
    .update(runSteps)
    .set({ status: 'completed', completedAt: at })
    .where(and(eq(runSteps.id, message.stepId), eq(runSteps.status, 'in_progress')));
  return insertItemEvents(
    ex,
    moved,
    moved.version - 1,
    [
      { kind: 'message', itemId: message.messageId, change: 'completed' },
      { kind: 'step', itemId: message.stepId, change: 'completed' },
    ],
    at,
  );
}

/**
 * Ends the messages a run's earlier execution left being written (its worker died or lost
 * its claim: the run was taken over, and its new execution writes a message of its own):
 * each becomes incomplete, its step failed, with their events. Locks the runs.
 */
export async function endAbandonedMessages(ex: Executor, runIds: readonly string[], at: number): Promise<ItemEvent[]> {
  if (runIds.length === 0) return [];
  // The runs first, as every other writer of their items locks them (no deadlock).
  const locked = await ex
    .select({ id: runs.id, threadId: runs.threadId, threadSeq: runs.threadSeq, version: runs.version })
    .from(runs)
    .where(inArray(runs.id, [...runIds]))
    .orderBy(asc(runs.id))
    .for('update');
  const left = await ex
    .update(messages)
    .set({ status: 'incomplete' })
    .where(and(inArray(messages.runId, [...runIds]), eq(messages.status, 'in_progress')))
    .returning({ id: messages.id, runId: messages.runId });
  if (left.length === 0) return [];
  const steps = await ex
    .update(runSteps)
    .set({ status: 'failed', failedAt: at, lastError: { code: 'server_error', message: 'The worker writing this message stopped.' } })
    .where(and(inArray(runSteps.runId, [...runIds]), eq(runSteps.status, 'in_progress'), eq(runSteps.type, 'message_creation')))
    .returning({ id: runSteps.id, runId: runSteps.runId });
  const events: ItemEvent[] = [];
  for (const run of locked) {
    const changes: ItemChange[] = [
      ...left.filter((m) => m.runId === run.id).map((m) => ({ kind: 'message' as const, itemId: m.id, change: 'incomplete' as const })),
      ...steps.filter((st) => st.runId === run.id).map((st) => ({ kind: 'step' as const, itemId: st.id, change: 'failed' as const })),
    ];
    events.push(...(await insertItemEvents(ex, run, run.version, changes, at)));
  }
  return events;
}

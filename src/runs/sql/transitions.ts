/**
 * Status changes: the one guarded UPDATE every move goes through, the engine's finish of
 * answered runs, and the end of open steps.
 */
import { and, eq, getTableColumns, sql, type SQL, type SQLWrapper } from 'drizzle-orm';
import type { Db, Executor } from '../../db/client.js';
import { jsonParam } from '../../db/json-param.js';
import { messages, runEvents, runItemEvents, runs, runSteps, type RunRow } from '../../db/schema.js';
import type { IncompleteDetails, RequiredAction, RunError, RunStatusEvent, RunUsage } from '../../domain/run.js';
import { isTerminal, sourcesOf, LEASED_STATUSES, requiredData, stampOf, type RunStatus } from '../../domain/run-lifecycle.js';
import { changedRunsWithEvents, withEvents, type AnnounceEvents } from './changes.js';
import { eventOf, toEventRow } from './history.js';

/** What a transition writes besides the status, for the statuses that carry data. */
export interface TransitionData {
  requiredAction?: RequiredAction;
  lastError?: RunError;
  incompleteDetails?: IncompleteDetails;
  usage?: RunUsage;
}

export interface TransitionGuard {
  /** Narrows the legal sources further: the caller's compare-and-set on what it saw. */
  from?: readonly RunStatus[];
  /** Applies only if the run is still at this version (nothing changed since it was read). */
  version?: number;
  /** Applies only while the caller's claim holds: the engine's guard. */
  leaseToken?: string;
  /** Applies only if the run's expiresAt is at or before this time: the sweeper's guard. */
  dueBy?: number;
}

/** One run's part in a {@link transitionRuns}: which run, what it carries, and its guard. */
export interface RunMove {
  runId: string;
  data?: TransitionData;
  guard?: TransitionGuard;
}

/**
 * Moves a run to `to` in one conditional UPDATE: it applies only while the run's status
 * is a legal source of `to` (from the transition table) and matches the guard, so
 * concurrent callers can never make an illegal move or lose one. Stamps the timestamps,
 * bumps the version and appends the event. Returns undefined when the guard did not
 * hold (the caller re-reads to learn why). Call inside a transaction.
 */
export async function transitionRun(
  ex: Executor,
  runId: string,
  to: RunStatus,
  at: number,
  data: TransitionData = {},
  guard: TransitionGuard = {},
): Promise<{ run: RunRow; event: RunStatusEvent } | undefined> {
  const [moved] = await transitionRuns(ex, to, at, [{ runId, data, guard }]);
  return moved;
}

/**
 * {@link transitionRun} for many runs going to the same status, each with its own data
 * and guard, in one UPDATE and one insert of their events: the engine commits a batch of
 * finished runs this way. Returns the runs that moved (a run whose guard failed is left
 * out). Call inside a transaction.
 */
export async function transitionRuns(
  ex: Executor,
  to: RunStatus,
  at: number,
  moves: readonly RunMove[],
): Promise<{ run: RunRow; event: RunStatusEvent }[]> {
  const rows = moveRows(to, moves);
  if (rows.length === 0) return [];
  const moved = await movesUpdate(ex, to, sql`${at}::bigint`, sql`${jsonParam(rows)}`).returning(getTableColumns(runs));
  if (moved.length === 0) return [];
  const results = moved.map((run) => ({ run, event: eventOf(run, at) }));
  await ex.insert(runEvents).values(results.map((r) => toEventRow(r.event, r.run)));
  return results;
}

/** The moves as the UPDATE reads them; a move the guard's `from` rules out entirely is dropped. */
function moveRows(to: RunStatus, moves: readonly RunMove[]): MoveRow[] {
  const rows: MoveRow[] = [];
  for (const { runId, data = {}, guard = {} } of moves) {
    const required = requiredData(to);
    if (required && !data[required]) throw new Error(`${to} needs ${required}`);
    const narrowed = guard.from;
    const sources = narrowed ? sourcesOf(to).filter((s) => narrowed.includes(s)) : sourcesOf(to);
    if (sources.length === 0) continue;
    rows.push({
      run_id: runId,
      sources: sources.join(','),
      version: guard.version ?? null,
      lease_token: guard.leaseToken ?? null,
      due_by: guard.dueBy ?? null,
      required_action: data.requiredAction ?? null,
      last_error: data.lastError ?? null,
      incomplete_details: data.incompleteDetails ?? null,
      usage: data.usage ?? null,
    });
  }
  if (new Set(rows.map((r) => r.run_id)).size !== rows.length) throw new Error('a run can move only once per batch');
  // In id order, so that two batches lock their common runs in the same order (the plan
  // walks the records in turn) rather than deadlock.
  return rows.sort((a, b) => (a.run_id < b.run_id ? -1 : 1));
}

/**
 * The one UPDATE that moves runs to `to`: each run by its own record of `moves` (a JSON
 * array of MoveRow), only from a legal source and only while its guard holds. Stamps the
 * timestamps and bumps the version.
 */
function movesUpdate(ex: Executor, to: RunStatus, at: SQL, moves: SQLWrapper) {
  return ex
    .update(runs)
    .set({
      ...statusSet(to, at),
      // requiredAction exists only while the run waits for it.
      requiredAction: to === 'requires_action' ? sql`m.required_action` : null,
      lastError: sql`coalesce(m.last_error, ${runs.lastError})`,
      incompleteDetails: sql`coalesce(m.incomplete_details, ${runs.incompleteDetails})`,
      usage: sql`coalesce(m.usage, ${runs.usage})`,
    })
    .from(sql`jsonb_to_recordset(${moves}::jsonb) as m(${sql.raw(MOVE_COLUMNS)})`)
    .where(
      and(
        eq(runs.id, sql`m.run_id`),
        sql`${runs.status}::text = any(string_to_array(m.sources, ','))`,
        sql`(m.version is null or ${runs.version} = m.version)`,
        sql`(m.lease_token is null or ${runs.leaseToken} = m.lease_token)`,
        sql`(m.due_by is null or ${runs.expiresAt} <= m.due_by)`,
      ),
    );
}

/**
 * What every move to `to` writes, whichever statement makes it (the guarded UPDATE above,
 * the queue's claim): the status, where it came from, the version, the lifecycle's
 * timestamp, no expiry once it ends, and no claim once it leaves the worker's hands.
 */
export function statusSet(to: RunStatus, at: SQL) {
  const stamp = stampOf(to);
  return {
    status: to,
    // SET expressions read the old row: this records where the run came from.
    previousStatus: sql`${runs.status}`,
    version: sql`${runs.version} + 1`,
    ...(stamp === 'startedAt' ? { startedAt: sql`coalesce(${runs.startedAt}, ${at})` } : {}),
    ...(stamp && stamp !== 'startedAt' ? { [stamp]: at } : {}),
    ...(isTerminal(to) ? { expiresAt: null } : {}),
    ...(LEASED_STATUSES.includes(to) ? {} : { workerId: null, leaseToken: null, leaseExpiresAt: null }),
  };
}

/** A move as the UPDATE reads it: one record of a JSON array, in these columns. */
interface MoveRow {
  run_id: string;
  /** The legal sources for this run, comma-separated (the table's, narrowed by the guard). */
  sources: string;
  version: number | null;
  lease_token: string | null;
  due_by: number | null;
  required_action: RequiredAction | null;
  last_error: RunError | null;
  incomplete_details: IncompleteDetails | null;
  usage: RunUsage | null;
}

const MOVE_COLUMNS =
  'run_id text, sources text, version integer, lease_token uuid, due_by bigint, required_action jsonb, last_error jsonb, incomplete_details jsonb, usage jsonb';

/** A model's answer, as a finished run records it. */
export interface FinishedRun {
  move: RunMove;
  messageId: string;
  stepId: string;
  /** Whether the message and its step were opened as the answer streamed (then they are ended, not created). */
  started: boolean;
  text: string;
  /** The usage of this model call (the run's total is in move.data.usage). */
  usage: RunUsage;
}

/**
 * The engine's end of a run that the model answered, for many runs in one statement
 * (built once): the runs move to `to` (guarded by their lease tokens), and each run that
 * moved gets its assistant message (created, or ended if it was opened as the answer
 * streamed) and its MESSAGE_CREATION step, their events before its status change, and
 * the statement one notification. A run whose guard failed (cancelled, expired, its claim
 * lost) gets nothing written, so a repeated model call never records a second message.
 */
export function finishRunsStatement(db: Db, to: 'completed' | 'incomplete', announce: AnnounceEvents) {
  const ph = sql.placeholder;
  const at = sql`${ph('at')}::bigint`;
  const messageEnd = to === 'completed' ? 'completed' : 'incomplete';
  const changed = db.$with('changed').as(movesUpdate(db, to, at, ph('moves')).returning(getTableColumns(runs)));
  const answer = sql`jsonb_to_recordset(${ph('answers')}::jsonb) as a(run_id text, message_id text, step_id text, started boolean, content text, usage jsonb)`;
  const written = db.$with('written').as(
    db
      .insert(messages)
      .select((qb) =>
        qb
          .select({
            id: sql`a.message_id`.as('id'),
            threadId: changed.threadId,
            createdAt: at.as('created_at'),
            role: sql`'assistant'::message_role`.as('role'),
            content: sql`a.content`.as('content'),
            status: sql.raw(`'${messageEnd}'::message_status`).as('status'),
            runId: changed.id,
            assistantId: changed.assistantId,
            metadata: sql`'{}'::jsonb`.as('metadata'),
          })
          .from(changed)
          .innerJoin(answer, sql`a.run_id = ${changed.id}`),
      )
      .onConflictDoUpdate({ target: messages.id, set: { content: sql`excluded.content`, status: sql`excluded.status` } })
      .returning({ id: messages.id }),
  );
  const steps = db.$with('steps').as(
    db
      .insert(runSteps)
      .select((qb) =>
        qb
          .select({
            id: sql`a.step_id`.as('id'),
            runId: changed.id,
            threadId: changed.threadId,
            assistantId: changed.assistantId,
            createdAt: at.as('created_at'),
            type: sql`'message_creation'::run_step_type`.as('type'),
            status: sql`'completed'::run_step_status`.as('status'),
            stepDetails:
              sql`jsonb_build_object('type', 'message_creation', 'messageCreation', jsonb_build_object('messageId', a.message_id))`.as(
                'step_details',
              ),
            lastError: sql`null::jsonb`.as('last_error'),
            completedAt: at.as('completed_at'),
            cancelledAt: sql`null::bigint`.as('cancelled_at'),
            failedAt: sql`null::bigint`.as('failed_at'),
            expiredAt: sql`null::bigint`.as('expired_at'),
            usage: sql`a.usage`.as('usage'),
          })
          .from(changed)
          .innerJoin(answer, sql`a.run_id = ${changed.id}`),
      )
      .onConflictDoUpdate({
        target: runSteps.id,
        set: { status: sql`excluded.status`, completedAt: sql`excluded.completed_at`, usage: sql`excluded.usage` },
      })
      .returning({ id: runSteps.id }),
  );
  // The item events, after the run's last status change (version - 1 once moved): a
  // message opened while streaming is ended; one that was not is created and ended at once.
  const items = db.$with('items', getTableColumns(runItemEvents)).as(
    sql`insert into run_item_events (run_id, version, sub, thread_id, thread_seq, kind, item_id, change, at)
      select ${changed.id}, ${changed.version} - 1,
        coalesce((select max(e.sub) from run_item_events e where e.run_id = ${changed.id} and e.version = ${changed.version} - 1), 0)
          + row_number() over (partition by ${changed.id} order by v.n),
        ${changed.threadId}, ${changed.threadSeq}, v.kind, case when v.kind = 'step' then a.step_id else a.message_id end, v.change, ${at}
      from ${changed} join ${answer} on a.run_id = ${changed.id}
      cross join (values (1, 'step', 'in_progress', false), (2, 'message', 'created', false),
                         (3, 'message', '${sql.raw(messageEnd)}', true), (4, 'step', 'completed', true)) as v(n, kind, change, always)
      where v.always or not a.started
      returning *`,
  );
  const statement = changedRunsWithEvents(db, { changed, after: [written, steps], items }, at, announce).prepare(`finish_runs_${to}`);
  return async (finishes: FinishedRun[], now: number) => {
    const rows = await statement.execute({
      at: now,
      moves: jsonParam(
        moveRows(
          to,
          finishes.map((f) => f.move),
        ),
      ),
      answers: jsonParam(
        finishes.map((f) => ({
          run_id: f.move.runId,
          message_id: f.messageId,
          step_id: f.stepId,
          started: f.started,
          content: f.text,
          usage: f.usage,
        })),
      ),
    });
    return withEvents(rows, () => now);
  };
}

/**
 * All SQL about runs, their events and their steps. Functions take an executor (the
 * database or an open transaction) so the service decides the transaction boundaries.
 */
import { and, asc, desc, eq, getTableColumns, gt, inArray, lt, lte, notInArray, sql, type SQL, type SQLWrapper, type WithSubquery } from 'drizzle-orm';
import type { WithSubqueryWithSelection } from 'drizzle-orm/pg-core';
import type { Db, Executor } from '../db/client.js';
import { planKeysetPage, type Page, type PageArgs } from '../db/keyset.js';
import { jsonParam } from '../db/json-param.js';
import { preparedPer } from '../db/prepared.js';
import {
  ACTIVE_STATUS_LIST,
  idempotencyKeys,
  messages,
  runEvents,
  runs,
  runSteps,
  threads,
  type MessageRow,
  type RunRow,
  type RunStepRow,
} from '../db/schema.js';
import type { EventColumns } from '../realtime/event-codec.js';
import type {
  IncompleteDetails,
  Metadata,
  RequiredAction,
  ResponseFormat,
  RunError,
  RunStatusEvent,
  RunUsage,
  StepDetails,
  Tool,
  ToolChoice,
  TruncationStrategy,
} from '../domain/run.js';
import {
  ACTIVE_STATUSES,
  isTerminal,
  sourcesOf,
  LEASED_STATUSES,
  openStepsEnd,
  requiredData,
  stampOf,
  type RunStatus,
} from '../domain/run-lifecycle.js';

/** What createRun supplies; the statement derives the rest (threadSeq, status, version). */
export interface NewRun {
  id: string;
  projectId: string;
  threadId: string;
  assistantId: string;
  createdAt: number;
  expiresAt: number;
  model: string;
  instructions: string;
  additionalInstructions: string | null;
  tools: Tool[];
  metadata: Metadata;
  temperature: number | null;
  topP: number | null;
  maxPromptTokens: number | null;
  maxCompletionTokens: number | null;
  truncationStrategy: TruncationStrategy;
  toolChoice: ToolChoice;
  parallelToolCalls: boolean;
  responseFormat: ResponseFormat;
  /** Messages added to the thread with the run (additionalMessages). */
  messages: { id: string; role: 'user' | 'assistant'; content: string; metadata: Metadata }[];
  /** The request's idempotency key, recorded with the run by the same statement. */
  idempotency: { key: string; fingerprint: string } | null;
}

/**
 * An expression announcing the event rows a statement wrote, given their columns (an
 * aggregate: see realtime/event-codec eventLinesSql and the transport), or undefined when
 * the transport announces after the commit instead.
 */
export type AnnounceEvents = ((events: EventColumns) => SQL) | undefined;

/** The runs columns, to select from a CTE that returned whole rows. */
const RUN_COLUMNS = Object.keys(getTableColumns(runs)) as (keyof RunRow)[];

/**
 * What every single-statement transition shares: `changed` (a CTE that returned whole
 * run rows) gets its events inserted, and the statement selects the changed runs, plus
 * one expression that announces all their events at once (one notification per
 * statement, however many runs). Data-modifying CTEs run to completion whether or not
 * the main query reads them; the announcement is an uncorrelated subquery, evaluated once
 * and only if some run changed.
 */
type ChangedRuns = WithSubqueryWithSelection<typeof runs._.columns, 'changed'>;
function changedRunsWithEvents(
  db: Db,
  ctes: { before?: WithSubquery[]; changed: ChangedRuns; after?: WithSubquery[] },
  at: SQLWrapper,
  announce: AnnounceEvents,
) {
  const { changed } = ctes;
  const events = db.$with('events').as(
    db
      .insert(runEvents)
      .select((qb) =>
        qb
          .select({
            runId: changed.id,
            version: changed.version,
            threadId: changed.threadId,
            threadSeq: changed.threadSeq,
            fromStatus: changed.previousStatus,
            toStatus: changed.status,
            at: sql`${at}::bigint`.as('at'),
          })
          .from(changed),
      )
      .returning(),
  );
  const announced = announce
    ? sql`(select ${announce({
        runId: events.runId,
        threadId: events.threadId,
        threadSeq: events.threadSeq,
        version: events.version,
        status: events.toStatus,
        previousStatus: events.fromStatus,
        at: events.at,
      })} from ${events})`
    : sql`null`;
  const columns = Object.fromEntries(RUN_COLUMNS.map((k) => [k, changed[k]])) as unknown as ChangedRuns['_']['selectedFields'];
  return db
    .with(...(ctes.before ?? []), changed, ...(ctes.after ?? []), events)
    .select({ ...columns, announced: announced.as('announced') })
    .from(changed);
}

/** The changed runs and their events, from a statement built by changedRunsWithEvents. */
function withEvents(rows: (RunRow & { announced: unknown })[], at: (run: RunRow) => number) {
  return rows.map(({ announced: _, ...run }) => ({ run, event: eventOf(run, at(run)) }));
}

/**
 * The columns of a NewRun as the statement reads them: one record per run of a JSON
 * array (snake_case keys, see newRunRecord), in these SQL types.
 */
const NEW_RUN_COLUMNS =
  'id text, project_id text, thread_id text, assistant_id text, created_at bigint, expires_at bigint, model text, ' +
  'instructions text, additional_instructions text, tools jsonb, metadata jsonb, temperature float8, top_p float8, ' +
  'max_prompt_tokens integer, max_completion_tokens integer, truncation_strategy jsonb, tool_choice jsonb, ' +
  'parallel_tool_calls boolean, response_format jsonb, messages jsonb, idempotency_key text, fingerprint text';

function newRunRecord(run: NewRun) {
  return {
    id: run.id,
    project_id: run.projectId,
    thread_id: run.threadId,
    assistant_id: run.assistantId,
    created_at: run.createdAt,
    expires_at: run.expiresAt,
    model: run.model,
    instructions: run.instructions,
    additional_instructions: run.additionalInstructions,
    tools: run.tools,
    metadata: run.metadata,
    temperature: run.temperature,
    top_p: run.topP,
    max_prompt_tokens: run.maxPromptTokens,
    max_completion_tokens: run.maxCompletionTokens,
    truncation_strategy: run.truncationStrategy,
    tool_choice: run.toolChoice,
    parallel_tool_calls: run.parallelToolCalls,
    response_format: run.responseFormat,
    messages: run.messages,
    idempotency_key: run.idempotency?.key ?? null,
    fingerprint: run.idempotency?.fingerprint ?? null,
  };
}

/**
 * Creates runs, on as many threads, in one statement, which PostgreSQL runs as one
 * transaction: it bumps each thread's run count (locking the thread, so a message cannot
 * slip in beside the new run; the count is the run's threadSeq), adds the additional
 * messages, inserts the runs and their first events, and, when the transport announces
 * in the statement, notifies once for all. One round trip, built once (prepared), where
 * a transaction of single statements took eight per run; and one commit and one
 * notification for every run created meanwhile (the service batches them).
 *
 * Returns the runs created: not those whose thread does not exist in their project, nor
 * those whose thread has an active run. Give it one run per thread, in thread id order:
 * threads are then locked in that order, so two gateways' statements do not deadlock.
 * Two runs racing on one thread in two statements are still stopped by the
 * runs_one_active_per_thread index, which fails the whole statement (the service then
 * writes its runs again one by one).
 *
 * The insert lists every column of runs, in table order (drizzle's insert ... select
 * requires it, and fails at start if a column is added and not here).
 */
export function createRunsStatement(db: Db, announce: AnnounceEvents) {
  const input = sql`jsonb_to_recordset(${sql.placeholder('runs')}::jsonb) as r(${sql.raw(NEW_RUN_COLUMNS)})`;
  const r = (column: string, as: string) => sql`r.${sql.raw(column)}`.as(as);
  const none = (type: string, column: string) => sql`null::${sql.raw(type)}`.as(column);
  const thread = db.$with('thread').as(
    db
      .update(threads)
      .set({ runCount: sql`${threads.runCount} + 1` })
      .from(input)
      .where(
        and(
          eq(threads.id, sql`r.thread_id`),
          eq(threads.projectId, sql`r.project_id`),
          // A thread busy with a run gets none: that run alone fails, not the batch.
          sql`not exists (select 1 from ${runs} where ${runs.threadId} = ${threads.id} and ${runs.status} in (${sql.raw(ACTIVE_STATUS_LIST)}))`,
        ),
      )
      .returning({ id: threads.id, projectId: threads.projectId, runCount: threads.runCount }),
  );
  // A record joins its thread by id and project: a run never lands on another project's thread.
  const ofThread = sql`r.thread_id = ${thread.id} and r.project_id = ${thread.projectId}`;
  const added = db.$with('added').as(
    db
      .insert(messages)
      .select((qb) =>
        qb
          .select({
            id: sql`m.id`.as('id'),
            threadId: thread.id,
            createdAt: r('created_at', 'created_at'),
            role: sql`m.role`.as('role'),
            content: sql`m.content`.as('content'),
            runId: none('text', 'run_id'),
            assistantId: none('text', 'assistant_id'),
            metadata: sql`m.metadata`.as('metadata'),
          })
          .from(thread)
          .innerJoin(input, ofThread)
          .crossJoin(sql`jsonb_to_recordset(r.messages) as m(id text, role message_role, content text, metadata jsonb)`),
      )
      .returning({ id: messages.id }),
  );
  const created = db.$with('changed').as(
    db
      .insert(runs)
      .select((qb) =>
        qb
          .select({
            id: r('id', 'id'),
            projectId: r('project_id', 'project_id'),
            threadId: thread.id,
            assistantId: r('assistant_id', 'assistant_id'),
            createdAt: r('created_at', 'created_at'),
            threadSeq: thread.runCount,
            status: sql`'queued'::run_status`.as('status'),
            previousStatus: none('run_status', 'previous_status'),
            version: sql`1`.as('version'),
            requiredAction: none('jsonb', 'required_action'),
            lastError: none('jsonb', 'last_error'),
            expiresAt: r('expires_at', 'expires_at'),
            startedAt: none('bigint', 'started_at'),
            cancelledAt: none('bigint', 'cancelled_at'),
            failedAt: none('bigint', 'failed_at'),
            completedAt: none('bigint', 'completed_at'),
            incompleteDetails: none('jsonb', 'incomplete_details'),
            model: r('model', 'model'),
            instructions: r('instructions', 'instructions'),
            additionalInstructions: r('additional_instructions', 'additional_instructions'),
            tools: r('tools', 'tools'),
            metadata: r('metadata', 'metadata'),
            usage: none('jsonb', 'usage'),
            temperature: r('temperature', 'temperature'),
            topP: r('top_p', 'top_p'),
            maxPromptTokens: r('max_prompt_tokens', 'max_prompt_tokens'),
            maxCompletionTokens: r('max_completion_tokens', 'max_completion_tokens'),
            truncationStrategy: r('truncation_strategy', 'truncation_strategy'),
            toolChoice: r('tool_choice', 'tool_choice'),
            parallelToolCalls: r('parallel_tool_calls', 'parallel_tool_calls'),
            responseFormat: r('response_format', 'response_format'),
            workerId: none('text', 'worker_id'),
            leaseToken: none('uuid', 'lease_token'),
            leaseExpiresAt: none('timestamptz', 'lease_expires_at'),
          })
          .from(thread)
          .innerJoin(input, ofThread),
      )
      .returning(),
  );
  // The idempotency key of each run created under one, in the same commit as the run.
  const keys = db.$with('keys').as(
    db
      .insert(idempotencyKeys)
      .select((qb) =>
        qb
          .select({
            projectId: created.projectId,
            key: r('idempotency_key', 'key'),
            operation: sql`'createRun'`.as('operation'),
            fingerprint: r('fingerprint', 'fingerprint'),
            resultId: created.id,
            createdAt: created.createdAt,
          })
          .from(created)
          .innerJoin(input, sql`r.id = ${created.id}`)
          .where(sql`r.idempotency_key is not null`),
      )
      .returning({ key: idempotencyKeys.key }),
  );
  // Each run's first event is at its creation.
  const at = sql`"changed"."created_at"`;
  const statement = changedRunsWithEvents(db, { before: [thread, added], changed: created, after: [keys] }, at, announce).prepare(
    'create_runs',
  );
  return async (values: NewRun[]): Promise<{ run: RunRow; event: RunStatusEvent }[]> => {
    const rows = await statement.execute({ runs: jsonParam(values.map(newRunRecord)) });
    return withEvents(rows, (run) => run.createdAt);
  };
}

const runById = preparedPer((ex) =>
  ex.select().from(runs).where(eq(runs.id, sql.placeholder('runId'))).limit(1).prepare('run_by_id'),
);

export async function findRun(ex: Executor, runId: string): Promise<RunRow | undefined> {
  const [run] = await runById(ex).execute({ runId });
  return run;
}

const runInProject = preparedPer((ex) =>
  ex
    .select()
    .from(runs)
    .where(and(eq(runs.id, sql.placeholder('runId')), eq(runs.projectId, sql.placeholder('projectId'))))
    .limit(1)
    .prepare('run_in_project'),
);

/** The run, if it exists in this project: another project's run is as absent as a missing one. */
export async function findRunInProject(ex: Executor, projectId: string, runId: string): Promise<RunRow | undefined> {
  const [run] = await runInProject(ex).execute({ runId, projectId });
  return run;
}

export async function findActiveRunId(ex: Executor, threadId: string): Promise<string | undefined> {
  const [row] = await ex
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.threadId, threadId), inArray(runs.status, [...ACTIVE_STATUSES])))
    .limit(1);
  return row?.id;
}

const firstRuns = (order: 'asc' | 'desc') =>
  preparedPer((ex) =>
    ex
      .select()
      .from(runs)
      .where(eq(runs.threadId, sql.placeholder('threadId')))
      .orderBy(order === 'asc' ? asc(runs.id) : desc(runs.id))
      .limit(sql.placeholder('limit'))
      .prepare(`first_runs_${order}`),
  );
const firstRunsAscending = firstRuns('asc');
const firstRunsDescending = firstRuns('desc');

export async function listRuns(
  ex: Executor,
  threadId: string,
  args: PageArgs,
  statuses?: readonly RunStatus[] | null,
): Promise<Page<RunRow>> {
  const plan = planKeysetPage(runs.id, args, 'run');
  // The first page of a thread, whichever order (what lists show): a prepared statement.
  if (!statuses?.length && args.after == null && args.before == null && args.last == null) {
    const statement = (args.order ?? 'desc') === 'asc' ? firstRunsAscending(ex) : firstRunsDescending(ex);
    return plan.page(await statement.execute({ threadId, limit: plan.limit }));
  }
  const rows = await ex
    .select()
    .from(runs)
    .where(
      and(
        eq(runs.threadId, threadId),
        // Each status once: a list of any length (70,000 fit in a request) is at most nine
        // parameters, well within PostgreSQL's 65,535.
        statuses && statuses.length > 0 ? inArray(runs.status, [...new Set(statuses)]) : undefined,
        plan.where,
      ),
    )
    .orderBy(plan.orderBy)
    .limit(plan.limit);
  return plan.page(rows);
}

export async function updateRunMetadata(
  ex: Executor,
  runId: string,
  metadata: Record<string, string>,
): Promise<RunRow | undefined> {
  const [run] = await ex.update(runs).set({ metadata }).where(eq(runs.id, runId)).returning();
  return run;
}

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
  await ex.insert(runEvents).values(results.map((r) => toEventRow(r.event)));
  return results;
}

/** The moves as the UPDATE reads them; a move the guard's `from` rules out entirely is dropped. */
function moveRows(to: RunStatus, moves: readonly RunMove[]): MoveRow[] {
  const rows: MoveRow[] = [];
  for (const { runId, data = {}, guard = {} } of moves) {
    const required = requiredData(to);
    if (required && !data[required]) throw new Error(`${to} needs ${required}`);
    const sources = guard.from ? sourcesOf(to).filter((s) => guard.from!.includes(s)) : sourcesOf(to);
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
  const stamp = stampOf(to);
  return ex
    .update(runs)
    .set({
      status: to,
      // SET expressions read the old row: this records where the run came from.
      previousStatus: sql`${runs.status}`,
      version: sql`${runs.version} + 1`,
      ...(stamp === 'startedAt' ? { startedAt: sql`coalesce(${runs.startedAt}, ${at})` } : {}),
      ...(stamp && stamp !== 'startedAt' ? { [stamp]: at } : {}),
      ...(isTerminal(to) ? { expiresAt: null } : {}),
      // requiredAction exists only while the run waits for it.
      requiredAction: to === 'requires_action' ? sql`m.required_action` : null,
      lastError: sql`coalesce(m.last_error, ${runs.lastError})`,
      incompleteDetails: sql`coalesce(m.incomplete_details, ${runs.incompleteDetails})`,
      usage: sql`coalesce(m.usage, ${runs.usage})`,
      // Leaving the worker's hands ends its claim.
      ...(LEASED_STATUSES.includes(to) ? {} : { workerId: null, leaseToken: null, leaseExpiresAt: null }),
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

/** A model's answer, as a finished run records it. */
export interface FinishedRun {
  move: RunMove;
  messageId: string;
  stepId: string;
  text: string;
  /** The usage of this model call (the run's total is in move.data.usage). */
  usage: RunUsage;
}

/**
 * The engine's end of a run that the model answered, for many runs in one statement
 * (built once): the runs move to `to` (guarded by their lease tokens), and each run that
 * moved gets its assistant message and its MESSAGE_CREATION step, its event, and the
 * statement one notification. A run whose guard failed (cancelled, expired, its claim
 * lost) gets nothing written, so a repeated model call never records a second message.
 */
export function finishRunsStatement(db: Db, to: 'completed' | 'incomplete', announce: AnnounceEvents) {
  const ph = sql.placeholder;
  const at = sql`${ph('at')}::bigint`;
  const changed = db.$with('changed').as(movesUpdate(db, to, at, ph('moves')).returning(getTableColumns(runs)));
  const answer = sql`jsonb_to_recordset(${ph('answers')}::jsonb) as a(run_id text, message_id text, step_id text, content text, usage jsonb)`;
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
            runId: changed.id,
            assistantId: changed.assistantId,
            metadata: sql`'{}'::jsonb`.as('metadata'),
          })
          .from(changed)
          .innerJoin(answer, sql`a.run_id = ${changed.id}`),
      )
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
            stepDetails: sql`jsonb_build_object('type', 'message_creation', 'messageCreation', jsonb_build_object('messageId', a.message_id))`.as('step_details'),
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
      .returning({ id: runSteps.id }),
  );
  const statement = changedRunsWithEvents(db, { changed, after: [written, steps] }, at, announce).prepare(`finish_runs_${to}`);
  return async (finishes: FinishedRun[], now: number) => {
    const rows = await statement.execute({
      at: now,
      moves: jsonParam(moveRows(to, finishes.map((f) => f.move))),
      answers: jsonParam(
        finishes.map((f) => ({ run_id: f.move.runId, message_id: f.messageId, step_id: f.stepId, content: f.text, usage: f.usage })),
      ),
    });
    return withEvents(rows, () => now);
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

/** The event of the transition that left `run` as it is. */
export function eventOf(run: RunRow, at: number): RunStatusEvent {
  return {
    runId: run.id,
    threadId: run.threadId,
    threadSeq: run.threadSeq,
    version: run.version,
    previousStatus: run.previousStatus,
    status: run.status,
    at,
  };
}

function toEventRow(e: RunStatusEvent) {
  return {
    runId: e.runId,
    threadId: e.threadId,
    threadSeq: e.threadSeq,
    version: e.version,
    fromStatus: e.previousStatus,
    toStatus: e.status,
    at: e.at,
  };
}

function fromEventRow(r: typeof runEvents.$inferSelect): RunStatusEvent {
  return {
    runId: r.runId,
    threadId: r.threadId,
    threadSeq: r.threadSeq,
    version: r.version,
    previousStatus: r.fromStatus,
    status: r.toStatus,
    at: r.at,
  };
}

/**
 * A thread's events after position (threadSeq, version), in order: the thread's history
 * from a threadRunsChanged cursor.
 */
export async function threadEventsAfter(
  ex: Executor,
  threadId: string,
  after: { threadSeq: number; version: number },
  limit = 1000,
): Promise<RunStatusEvent[]> {
  const rows = await ex
    .select()
    .from(runEvents)
    .where(
      and(
        eq(runEvents.threadId, threadId),
        sql`(${runEvents.threadSeq}, ${runEvents.version}) > (${after.threadSeq}, ${after.version})`,
      ),
    )
    .orderBy(asc(runEvents.threadSeq), asc(runEvents.version))
    .limit(limit);
  return rows.map(fromEventRow);
}

/** The run's events after `afterVersion`, in order, up to `limit`. */
export async function runEventsAfter(
  ex: Executor,
  runId: string,
  afterVersion: number,
  limit = 1000,
): Promise<RunStatusEvent[]> {
  const rows = await ex
    .select()
    .from(runEvents)
    .where(and(eq(runEvents.runId, runId), gt(runEvents.version, afterVersion)))
    .orderBy(asc(runEvents.version))
    .limit(limit);
  return rows.map(fromEventRow);
}

export async function findRunEvent(ex: Executor, runId: string, version: number): Promise<RunStatusEvent | undefined> {
  const [row] = await ex
    .select()
    .from(runEvents)
    .where(and(eq(runEvents.runId, runId), eq(runEvents.version, version)))
    .limit(1);
  return row && fromEventRow(row);
}

export type NewRunStep = typeof runSteps.$inferInsert;

export async function insertRunStep(ex: Executor, step: NewRunStep): Promise<void> {
  await ex.insert(runSteps).values(step);
}

/** The run's TOOL_CALLS step still waiting for outputs, if any. */
export async function findOpenToolCallsStep(ex: Executor, runId: string): Promise<RunStepRow | undefined> {
  const [row] = await ex
    .select()
    .from(runSteps)
    .where(and(eq(runSteps.runId, runId), eq(runSteps.type, 'tool_calls'), eq(runSteps.status, 'in_progress')))
    .orderBy(asc(runSteps.id))
    .limit(1);
  return row;
}

export async function completeRunStep(
  ex: Executor,
  stepId: string,
  at: number,
  stepDetails: StepDetails,
): Promise<void> {
  await ex
    .update(runSteps)
    .set({ status: 'completed', completedAt: at, stepDetails })
    .where(eq(runSteps.id, stepId));
}

/**
 * Steps follow their run: when runs end, their open steps end with them, as the
 * lifecycle says (a completed run has none open).
 */
export async function closeOpenSteps(ex: Executor, runIds: readonly string[], runStatus: RunStatus, at: number): Promise<void> {
  const end = openStepsEnd(runStatus);
  if (!end || runIds.length === 0) return;
  await ex
    .update(runSteps)
    .set({ status: end.status, [end.stamp]: at })
    .where(and(inArray(runSteps.runId, [...runIds]), eq(runSteps.status, 'in_progress')));
}

/**
 * The queue, in one statement (built once): moves up to `limit` queued runs to in_progress
 * for this worker, with a lease on the database clock, records their events and
 * announces them in one notification.
 *
 * Which runs: projects take turns (round robin). The projects with queued runs are visited
 * in id order, starting after `after` (the project this worker served last) and wrapping
 * around; the claim takes each one's oldest queued run, then each one's second, and so on.
 * So a project that floods the queue has one run started, then every other waiting
 * project has one, before its next; with one project the order is the oldest first, as a
 * plain queue's. The work is bounded by `limit`, not by the runs or projects waiting: the
 * projects are found by a skip scan of runs_queued_idx (one probe each, at most `limit`
 * of them), and each has at most 2 x `limit` runs ranked (the slack lets claims racing
 * on one project still find runs the others did not lock).
 *
 * SKIP LOCKED lets many workers claim at once without waiting on or double-taking each
 * other's rows. The runs to take are picked by an uncorrelated ARRAY(...) subquery, which
 * PostgreSQL runs exactly once: as `id in (select ... limit n for update skip locked)` it
 * may run again, skipping what it locked the first time, and take more than n runs (seen
 * here: 217 for a limit of 50).
 */
export function claimStatement(db: Db, announce: AnnounceEvents) {
  if (!sourcesOf('in_progress').includes('queued')) throw new Error('the lifecycle no longer starts queued runs');
  const ph = sql.placeholder;
  const at = sql`${ph('at')}::bigint`;
  const limit = sql`${ph('limit')}::integer`;
  const after = sql`${ph('after')}::text`;
  // The waiting project that comes next after `from`: one step of a skip scan.
  const next = (from: SQL) =>
    sql`(select q.project_id from runs q where q.status = 'queued' and q.project_id > ${from} order by q.project_id limit 1)`;
  const fairPick = sql`
    with recursive later(project_id, turn) as (
      select ${next(after)}, 1
      union all
      select ${next(sql`l.project_id`)}, l.turn + 1 from later l where l.project_id is not null and l.turn < ${limit}
    ), wrapped(project_id, turn) as (
      select ${next(sql`''`)}, ${limit} + 1
      union all
      select ${next(sql`w.project_id`)}, w.turn + 1 from wrapped w where w.project_id <= ${after} and w.turn < 2 * ${limit}
    ), projects as (
      select project_id, turn from later where project_id is not null
      union all
      select project_id, turn from wrapped where project_id <= ${after}
      order by turn limit ${limit}
    ), candidates as materialized (
      select array(
        select q.id
        from projects p
        cross join lateral (
          select q.id, row_number() over (order by q.id) as rank
          from runs q where q.project_id = p.project_id and q.status = 'queued'
          order by q.id limit 2 * ${limit}
        ) q
        order by q.rank, p.turn
      ) as ids
    )
    -- The candidates looked up by primary key (a join would scan every queued run).
    select r.id from runs r, candidates c
    where r.id = any(c.ids) and r.status = 'queued'
    order by array_position(c.ids, r.id)
    limit ${limit}
    for update of r skip locked`;
  const changed = db.$with('changed').as(
    db
      .update(runs)
      .set({
        status: 'in_progress',
        previousStatus: sql`${runs.status}`,
        version: sql`${runs.version} + 1`,
        startedAt: sql`coalesce(${runs.startedAt}, ${at})`,
        workerId: sql`${ph('workerId')}::text`,
        leaseToken: sql`gen_random_uuid()`,
        leaseExpiresAt: sql`now() + make_interval(secs => ${ph('leaseSeconds')}::integer)`,
      })
      .where(and(sql`${runs.id} = any(array(${fairPick}))`, eq(runs.status, 'queued')))
      .returning(),
  );
  const statement = changedRunsWithEvents(db, { changed }, at, announce).prepare('claim_runs');
  return async (workerId: string, limit: number, after: string, now: number, leaseSeconds: number) =>
    withEvents(await statement.execute({ workerId, limit, after, at: now, leaseSeconds }), () => now);
}

/**
 * Takes over runs whose worker stopped renewing its lease (it crashed, or hangs): a new
 * claim on the same status, no transition. The caller resumes them.
 */
export async function takeOverLapsedRuns(
  ex: Executor,
  workerId: string,
  limit: number,
  leaseSeconds: number,
): Promise<RunRow[]> {
  const lapsed = ex
    .select({ id: runs.id })
    .from(runs)
    .where(and(inArray(runs.status, [...LEASED_STATUSES]), lt(runs.leaseExpiresAt, sql`now()`)))
    .orderBy(asc(runs.leaseExpiresAt))
    .limit(limit)
    .for('update', { skipLocked: true });
  // = any(array(...)): the pick runs once (see claimStatement).
  return ex
    .update(runs)
    .set({
      workerId,
      leaseToken: sql`gen_random_uuid()`,
      leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})`,
    })
    .where(and(sql`${runs.id} = any(array(${lapsed}))`, inArray(runs.status, [...LEASED_STATUSES]), lt(runs.leaseExpiresAt, sql`now()`)))
    .returning();
}

/**
 * Claims of this worker it does not know of, taken again under new tokens: a claim (or
 * takeover) that committed while its connection died leaves runs in this worker's name
 * that no execution holds, which would otherwise wait for their leases to lapse.
 * `executing`: the runs this worker is executing, left alone.
 */
export async function reclaimOwnRuns(
  ex: Executor,
  workerId: string,
  executing: readonly string[],
  leaseSeconds: number,
): Promise<RunRow[]> {
  return ex
    .update(runs)
    .set({
      leaseToken: sql`gen_random_uuid()`,
      leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})`,
    })
    .where(
      and(
        eq(runs.workerId, workerId),
        inArray(runs.status, [...LEASED_STATUSES]),
        notInArray(runs.id, [...executing]),
      ),
    )
    .returning();
}

/** Extends a claim; undefined when the claim is no longer the caller's. */
export async function renewLease(ex: Executor, runId: string, leaseToken: string, leaseSeconds: number): Promise<RunRow | undefined> {
  const [run] = await ex
    .update(runs)
    .set({ leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})` })
    .where(and(eq(runs.id, runId), eq(runs.leaseToken, leaseToken)))
    .returning();
  return run;
}

/** Gives a claim up so that another worker takes the run over at once (graceful shutdown). */
export async function releaseLease(ex: Executor, runId: string, leaseToken: string): Promise<void> {
  await ex
    .update(runs)
    .set({ leaseExpiresAt: sql`now() - interval '1 second'` })
    .where(and(eq(runs.id, runId), eq(runs.leaseToken, leaseToken)));
}

/** Active runs whose expiresAt has passed, oldest first. */
export async function findDueRunIds(ex: Executor, at: number, limit: number): Promise<string[]> {
  const rows = await ex
    .select({ id: runs.id })
    .from(runs)
    .where(and(inArray(runs.status, [...ACTIVE_STATUSES]), lte(runs.expiresAt, at)))
    .orderBy(asc(runs.expiresAt))
    .limit(limit);
  return rows.map((r) => r.id);
}

/** Every step of each of these runs, oldest first: one statement for the lot. */
export async function stepsOfRuns(ex: Executor, runIds: readonly string[]): Promise<Map<string, RunStepRow[]>> {
  const rows = await ex
    .select()
    .from(runSteps)
    .where(inArray(runSteps.runId, [...runIds]))
    .orderBy(asc(runSteps.runId), asc(runSteps.id));
  return groupBy(runIds, rows, (r) => r.runId);
}

/** Every message of each of these threads, oldest first: one statement for the lot. */
export async function messagesOfThreads(ex: Executor, threadIds: readonly string[]): Promise<Map<string, MessageRow[]>> {
  const rows = await ex
    .select()
    .from(messages)
    .where(inArray(messages.threadId, [...threadIds]))
    .orderBy(asc(messages.threadId), asc(messages.id));
  return groupBy(threadIds, rows, (r) => r.threadId);
}

function groupBy<T>(keys: readonly string[], rows: T[], keyOf: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>(keys.map((k) => [k, []]));
  for (const row of rows) groups.get(keyOf(row))?.push(row);
  return groups;
}

export async function pageRunSteps(ex: Executor, runId: string, args: PageArgs): Promise<Page<RunStepRow>> {
  const plan = planKeysetPage(runSteps.id, args, 'step');
  const rows = await ex
    .select()
    .from(runSteps)
    .where(and(eq(runSteps.runId, runId), plan.where))
    .orderBy(plan.orderBy)
    .limit(plan.limit);
  return plan.page(rows);
}

/** One statement whatever the number of runs: the ids travel as one array parameter. */
const firstSteps = (order: 'asc' | 'desc') =>
  preparedPer((ex) => {
    const ranked = ex
      .select({
        ...getTableColumns(runSteps),
        rank: sql<number>`row_number() over (partition by ${runSteps.runId} order by ${runSteps.id} ${sql.raw(order)})`.as('rank'),
      })
      .from(runSteps)
      .where(sql`${runSteps.runId} = any(${sql.placeholder('runIds')}::text[])`)
      .as('ranked');
    return ex
      .select()
      .from(ranked)
      .where(lte(ranked.rank, sql.placeholder('limit')))
      .orderBy(ranked.runId, ranked.rank)
      .prepare(`first_steps_${order}`);
  });
const firstStepsAscending = firstSteps('asc');
const firstStepsDescending = firstSteps('desc');

/**
 * The first `limit` steps of each of these runs, in one statement (a window over the
 * runs' steps), so a page of runs with their steps costs one query, not one per run.
 */
export async function firstStepsOfRuns(
  ex: Executor,
  runIds: readonly string[],
  order: 'asc' | 'desc',
  limit: number,
): Promise<Map<string, RunStepRow[]>> {
  const statement = order === 'asc' ? firstStepsAscending(ex) : firstStepsDescending(ex);
  const rows = await statement.execute({ runIds: [...runIds], limit });
  const byRun = new Map<string, RunStepRow[]>(runIds.map((id) => [id, []]));
  for (const { rank: _rank, ...step } of rows) byRun.get(step.runId)?.push(step);
  return byRun;
}

export async function findRunStep(ex: Executor, stepId: string): Promise<RunStepRow | undefined> {
  const [row] = await ex.select().from(runSteps).where(eq(runSteps.id, stepId)).limit(1);
  return row;
}

export async function lastThreadPosition(ex: Executor, threadId: string): Promise<{ threadSeq: number; version: number }> {
  const [row] = await ex
    .select({ threadSeq: runEvents.threadSeq, version: runEvents.version })
    .from(runEvents)
    .where(eq(runEvents.threadId, threadId))
    .orderBy(desc(runEvents.threadSeq), desc(runEvents.version))
    .limit(1);
  return row ?? { threadSeq: 0, version: 0 };
}

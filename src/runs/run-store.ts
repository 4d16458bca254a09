/**
 * All SQL about runs, their events and their steps. Functions take an executor (the
 * database or an open transaction) so the service decides the transaction boundaries.
 */
import { and, asc, desc, eq, getTableColumns, gt, inArray, lt, lte, sql, type SQL, type SQLWrapper } from 'drizzle-orm';
import type { Db, Executor } from '../db/client.js';
import { planKeysetPage, type Page, type PageArgs } from '../db/keyset.js';
import { preparedPer } from '../db/prepared.js';
import { messages, runEvents, runs, runSteps, threads, type MessageRow, type RunRow, type RunStepRow } from '../db/schema.js';
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
  timestampStampedBy,
  type RunStatus,
} from '../domain/run-status.js';

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
  truncationStrategy: TruncationStrategy | null;
  toolChoice: ToolChoice | null;
  parallelToolCalls: boolean;
  responseFormat: ResponseFormat | null;
  /** Messages added to the thread with the run (additionalMessages). */
  messages: { id: string; role: 'user' | 'assistant'; content: string; metadata: Metadata }[];
}

/** An expression announcing an event, given its columns (see realtime/transport). */
export type AnnounceEvent = (event: Record<keyof RunStatusEvent, SQLWrapper>) => SQL;

/**
 * Creates a run in one statement, which PostgreSQL runs as one transaction: it bumps the
 * thread's run count (locking the thread, so a message cannot slip in beside the new run;
 * the count is the run's threadSeq), adds the additional messages, inserts the run and
 * its first event, and, when the transport announces in the statement, notifies. One
 * round trip, built once (prepared), where a transaction of single statements took eight.
 *
 * Returns the run, or undefined when the thread does not exist in that project. A thread
 * that already has an active run fails on the runs_one_active_per_thread index.
 *
 * The insert lists every column of runs, in table order (drizzle's insert ... select
 * requires it, and fails at start if a column is added and not here).
 */
export function createRunStatement(db: Db, announce: AnnounceEvent | undefined) {
  const ph = sql.placeholder;
  const cast = (name: keyof NewRun, type: string, column: string) => sql`${ph(name)}::${sql.raw(type)}`.as(column);
  const none = (type: string, column: string) => sql`null::${sql.raw(type)}`.as(column);
  const thread = db.$with('thread').as(
    db
      .update(threads)
      .set({ runCount: sql`${threads.runCount} + 1` })
      .where(and(eq(threads.id, ph('threadId')), eq(threads.projectId, ph('projectId'))))
      .returning({ id: threads.id, runCount: threads.runCount }),
  );
  const added = db.$with('added').as(
    db.insert(messages).select((qb) =>
      qb
        .select({
          id: sql`m.id`.as('id'),
          threadId: thread.id,
          createdAt: cast('createdAt', 'bigint', 'created_at'),
          role: sql`m.role`.as('role'),
          content: sql`m.content`.as('content'),
          runId: none('text', 'run_id'),
          assistantId: none('text', 'assistant_id'),
          metadata: sql`m.metadata`.as('metadata'),
        })
        .from(thread)
        .crossJoin(sql`jsonb_to_recordset(${ph('messages')}::jsonb) as m(id text, role message_role, content text, metadata jsonb)`),
    ).returning({ id: messages.id }),
  );
  const created = db.$with('created').as(
    db
      .insert(runs)
      .select((qb) =>
        qb
          .select({
            id: cast('id', 'text', 'id'),
            projectId: cast('projectId', 'text', 'project_id'),
            threadId: thread.id,
            assistantId: cast('assistantId', 'text', 'assistant_id'),
            createdAt: cast('createdAt', 'bigint', 'created_at'),
            threadSeq: thread.runCount,
            status: sql`'queued'::run_status`.as('status'),
            previousStatus: none('run_status', 'previous_status'),
            version: sql`1`.as('version'),
            requiredAction: none('jsonb', 'required_action'),
            lastError: none('jsonb', 'last_error'),
            expiresAt: cast('expiresAt', 'bigint', 'expires_at'),
            startedAt: none('bigint', 'started_at'),
            cancelledAt: none('bigint', 'cancelled_at'),
            failedAt: none('bigint', 'failed_at'),
            completedAt: none('bigint', 'completed_at'),
            incompleteDetails: none('jsonb', 'incomplete_details'),
            model: cast('model', 'text', 'model'),
            instructions: cast('instructions', 'text', 'instructions'),
            additionalInstructions: cast('additionalInstructions', 'text', 'additional_instructions'),
            tools: cast('tools', 'jsonb', 'tools'),
            metadata: cast('metadata', 'jsonb', 'metadata'),
            usage: none('jsonb', 'usage'),
            temperature: cast('temperature', 'float8', 'temperature'),
            topP: cast('topP', 'float8', 'top_p'),
            maxPromptTokens: cast('maxPromptTokens', 'integer', 'max_prompt_tokens'),
            maxCompletionTokens: cast('maxCompletionTokens', 'integer', 'max_completion_tokens'),
            truncationStrategy: cast('truncationStrategy', 'jsonb', 'truncation_strategy'),
            toolChoice: cast('toolChoice', 'jsonb', 'tool_choice'),
            parallelToolCalls: cast('parallelToolCalls', 'boolean', 'parallel_tool_calls'),
            responseFormat: cast('responseFormat', 'jsonb', 'response_format'),
            workerId: none('text', 'worker_id'),
            leaseToken: none('uuid', 'lease_token'),
            leaseExpiresAt: none('timestamptz', 'lease_expires_at'),
          })
          .from(thread),
      )
      .returning(),
  );
  const event = db.$with('event').as(
    db
      .insert(runEvents)
      .select((qb) =>
        qb
          .select({
            runId: created.id,
            version: created.version,
            threadId: created.threadId,
            threadSeq: created.threadSeq,
            fromStatus: created.previousStatus,
            toStatus: created.status,
            at: created.createdAt,
          })
          .from(created),
      )
      // A data-modifying CTE always runs to the end, so its RETURNING announces the event.
      .returning({
        announced: (announce
          ? announce({
              runId: runEvents.runId,
              threadId: runEvents.threadId,
              threadSeq: runEvents.threadSeq,
              version: runEvents.version,
              status: runEvents.toStatus,
              previousStatus: runEvents.fromStatus,
              at: runEvents.at,
            })
          : sql`null`
        ).as('announced'),
      }),
  );
  // Data-modifying CTEs run to completion whether or not the main query reads them.
  const statement = db.with(thread, added, created, event).select().from(created).prepare('create_run');
  return async (values: NewRun): Promise<{ run: RunRow; event: RunStatusEvent } | undefined> => {
    const [run] = await statement.execute({
      ...values,
      tools: JSON.stringify(values.tools),
      metadata: JSON.stringify(values.metadata),
      truncationStrategy: JSON.stringify(values.truncationStrategy),
      toolChoice: JSON.stringify(values.toolChoice),
      responseFormat: JSON.stringify(values.responseFormat),
      messages: JSON.stringify(values.messages),
    });
    return run && { run, event: eventOf(run, run.createdAt) };
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
        statuses && statuses.length > 0 ? inArray(runs.status, [...statuses]) : undefined,
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

/** The statuses in which a worker holds the run. */
const WORKER_STATUSES: readonly RunStatus[] = ['in_progress', 'cancelling'];

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
  const rows: MoveRow[] = [];
  for (const { runId, data = {}, guard = {} } of moves) {
    if (to === 'requires_action' && !data.requiredAction) throw new Error('requires_action needs requiredAction');
    if (to === 'failed' && !data.lastError) throw new Error('failed needs lastError');
    if (to === 'incomplete' && !data.incompleteDetails) throw new Error('incomplete needs incompleteDetails');
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
  if (rows.length === 0) return [];
  if (new Set(rows.map((r) => r.run_id)).size !== rows.length) throw new Error('a run can move only once per batch');

  const stamp = timestampStampedBy(to);
  const moved = await ex
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
      ...(WORKER_STATUSES.includes(to) ? {} : { workerId: null, leaseToken: null, leaseExpiresAt: null }),
    })
    .from(sql`jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as m(${sql.raw(MOVE_COLUMNS)})`)
    .where(
      and(
        eq(runs.id, sql`m.run_id`),
        sql`${runs.status}::text = any(string_to_array(m.sources, ','))`,
        sql`(m.version is null or ${runs.version} = m.version)`,
        sql`(m.lease_token is null or ${runs.leaseToken} = m.lease_token)`,
        sql`(m.due_by is null or ${runs.expiresAt} <= m.due_by)`,
      ),
    )
    .returning(getTableColumns(runs));
  if (moved.length === 0) return [];
  const results = moved.map((run) => ({ run, event: eventOf(run, at) }));
  await ex.insert(runEvents).values(results.map((r) => toEventRow(r.event)));
  return results;
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

export async function insertRunSteps(ex: Executor, steps: NewRunStep[]): Promise<void> {
  if (steps.length) await ex.insert(runSteps).values(steps);
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
 * Steps follow their run: when the run ends, its open steps end with it (cancelled,
 * failed or expired; a completed run has none open).
 */
const STEP_END: Partial<Record<RunStatus, { status: StepEnd; stamp: 'cancelledAt' | 'failedAt' | 'expiredAt' | 'completedAt' }>> = {
  cancelled: { status: 'cancelled', stamp: 'cancelledAt' },
  failed: { status: 'failed', stamp: 'failedAt' },
  expired: { status: 'expired', stamp: 'expiredAt' },
  completed: { status: 'completed', stamp: 'completedAt' },
  incomplete: { status: 'completed', stamp: 'completedAt' },
};
type StepEnd = 'cancelled' | 'failed' | 'expired' | 'completed';

/**
 * Steps follow their run: when the run ends, its open steps end with it.
 */
export async function closeOpenSteps(ex: Executor, runId: string, runStatus: RunStatus, at: number): Promise<void> {
  const end = STEP_END[runStatus];
  if (!end) return;
  await ex
    .update(runSteps)
    .set({ status: end.status, [end.stamp]: at })
    .where(and(eq(runSteps.runId, runId), eq(runSteps.status, 'in_progress')));
}

/**
 * The queue: moves up to `limit` of the oldest queued runs to in_progress for this
 * worker, with a lease on the database clock. SKIP LOCKED lets many workers claim at
 * once without waiting on or double-taking each other's rows. One statement per batch,
 * plus the batch's events.
 */
export async function claimQueuedRuns(
  ex: Executor,
  workerId: string,
  limit: number,
  at: number,
  leaseSeconds: number,
): Promise<{ run: RunRow; event: RunStatusEvent }[]> {
  if (!sourcesOf('in_progress').includes('queued')) throw new Error('the lifecycle no longer starts queued runs');
  const ids = await lockFree(
    ex.select({ id: runs.id }).from(runs).where(eq(runs.status, 'queued')).orderBy(asc(runs.id)).limit(limit),
  );
  if (ids.length === 0) return [];
  const claimed = await ex
    .update(runs)
    .set({
      status: 'in_progress',
      previousStatus: sql`${runs.status}`,
      version: sql`${runs.version} + 1`,
      startedAt: sql`coalesce(${runs.startedAt}, ${at})`,
      workerId,
      leaseToken: sql`gen_random_uuid()`,
      leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})`,
    })
    .where(and(inArray(runs.id, ids), eq(runs.status, 'queued')))
    .returning();
  const results = claimed.map((run) => ({ run, event: eventOf(run, at) }));
  if (results.length) await ex.insert(runEvents).values(results.map((r) => toEventRow(r.event)));
  return results;
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
  const lapsed = await lockFree(
    ex
      .select({ id: runs.id })
      .from(runs)
      .where(and(inArray(runs.status, [...WORKER_STATUSES]), lt(runs.leaseExpiresAt, sql`now()`)))
      .orderBy(asc(runs.leaseExpiresAt))
      .limit(limit),
  );
  if (lapsed.length === 0) return [];
  return ex
    .update(runs)
    .set({
      workerId,
      leaseToken: sql`gen_random_uuid()`,
      leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})`,
    })
    .where(and(inArray(runs.id, lapsed), inArray(runs.status, [...WORKER_STATUSES]), lt(runs.leaseExpiresAt, sql`now()`)))
    .returning();
}

/**
 * Locks the rows this query selects that nobody else has locked, and gives their ids.
 * A statement of its own, on purpose: as a subquery (`where id in (select ... limit n
 * for update skip locked)`) PostgreSQL may run it more than once in one UPDATE, each
 * time skipping what it locked before, and so take more than n rows (seen here: 217
 * claimed by a claim of 50).
 */
async function lockFree(query: { for: (strength: 'update', config: { skipLocked: true }) => PromiseLike<{ id: string }[]> }): Promise<string[]> {
  const rows = await query.for('update', { skipLocked: true });
  return rows.map((r) => r.id);
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

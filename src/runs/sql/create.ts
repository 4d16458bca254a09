/**
 * createRun's statement: runs, their additional messages, their first events, for many
 * threads at once.
 */
import { and, eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../../db/client.js';
import { jsonParam } from '../../db/json-param.js';
import { ACTIVE_STATUS_LIST, assistants, idempotencyKeys, messages, runs, threads, type RunRow } from '../../db/schema.js';
import type { Metadata, ResponseFormat, RunStatusEvent, Tool, ToolChoice, TruncationStrategy } from '../../domain/run.js';
import { changedRunsWithEvents, withEvents, type AnnounceEvents } from './changes.js';

/** What createRun supplies; the statement derives the rest (threadSeq, status, version). */
export interface NewRun {
  id: string;
  projectId: string;
  threadId: string;
  assistantId: string;
  /** The assistant's revision the run was made from: the run is made only while it is the assistant's. */
  assistantRevision: number;
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
  /** The creating request's W3C traceparent (tracing on), continued by the worker's span. */
  traceparent?: string | null;
}

/**
 * The columns of a NewRun as the statement reads them: one record per run of a JSON
 * array (snake_case keys, see newRunRecord), in these SQL types.
 */
const NEW_RUN_COLUMNS =
  'id text, project_id text, thread_id text, assistant_id text, assistant_revision integer, created_at bigint, expires_at bigint, model text, ' +
  'instructions text, additional_instructions text, tools jsonb, metadata jsonb, temperature float8, top_p float8, ' +
  'max_prompt_tokens integer, max_completion_tokens integer, truncation_strategy jsonb, tool_choice jsonb, ' +
  'parallel_tool_calls boolean, response_format jsonb, messages jsonb, idempotency_key text, fingerprint text, traceparent text';

function newRunRecord(run: NewRun) {
  return {
    id: run.id,
    project_id: run.projectId,
    thread_id: run.threadId,
    assistant_id: run.assistantId,
    assistant_revision: run.assistantRevision,
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
    traceparent: run.traceparent ?? null,
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
 * those whose thread has an active run, nor those whose assistant is no longer at the
 * revision the run was made from (modified or deleted since it was read: the caller
 * reads it again). Give it one run per thread, in thread id order:
 * threads are then locked in that order, so two gateways' statements do not deadlock.
 * Two runs racing on one thread in two statements are still stopped by the
 * runs_one_active_per_thread index, which fails the whole statement (the service then
 * writes its runs again one by one).
 *
 * The insert lists every column of runs, in table order (drizzle's insert ... select
 * requires it, and fails at start if a column is added and not here).
 */
export function createRunsStatement(db: Db, announce: AnnounceEvents) {
  const statement = createRunsQuery(db, announce).prepare('create_runs');
  return async (values: NewRun[]): Promise<{ run: RunRow; event: RunStatusEvent }[]> =>
    withEvents(await statement.execute({ runs: runsParam(values) }), (run) => run.createdAt);
}

/**
 * The same statement in an open transaction that announces the events itself as it
 * commits (RunCore.commit): runs created with other writes, such as a new thread and
 * its first run. Built per call (not prepared); it counts its events, announcing none.
 */
export async function createRunsIn(tx: Tx, values: NewRun[]): Promise<{ run: RunRow; event: RunStatusEvent }[]> {
  const counting: AnnounceEvents = { statusLine: () => sql`''`, itemLine: () => sql`''`, inStatement: () => sql`count(*)` };
  const rows = await createRunsQuery(tx, counting).execute({ runs: runsParam(values) });
  return withEvents(rows, (run) => run.createdAt);
}

const runsParam = (values: NewRun[]) => jsonParam(values.map(newRunRecord));

function createRunsQuery(db: Db, announce: AnnounceEvents) {
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
          // Nor does a run made from an assistant that has changed or gone since.
          sql`exists (select 1 from ${assistants} where ${assistants.id} = r.assistant_id and ${assistants.projectId} = r.project_id and ${assistants.revision} = r.assistant_revision)`,
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
            status: sql`'completed'::message_status`.as('status'),
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
            traceparent: r('traceparent', 'traceparent'),
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
  return changedRunsWithEvents(db, { before: [thread, added], changed: created, after: [keys] }, at, announce);
}

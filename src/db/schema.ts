/**
 * The tables. Migrations in `drizzle/` are generated from this file by drizzle-kit
 * (`npm run db:generate`) and applied at start; a generated migration is edited only to
 * backfill a new NOT NULL column, and then says so at its top.
 *
 * Times the API shows are Unix seconds (as in the Assistants API), stored as bigint so they do not
 * stop in 2038. Ids are prefixed ULIDs, so ordering by id is ordering by creation.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  customType,
  doublePrecision,
  index,
  integer,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type {
  IncompleteDetails,
  Metadata,
  RequiredAction,
  ResponseFormat,
  RunError,
  RunUsage,
  StepDetails,
  Tool,
  ToolChoice,
  TruncationStrategy,
} from '../domain/run.js';
import { ACTIVE_STATUSES, LEASED_STATUSES, RUN_STATUSES, TERMINAL_STATUSES, sqlList } from '../domain/run-lifecycle.js';
import { jsonParam } from './json-param.js';

/** The active statuses as an SQL list: the partial indexes' condition, and queries that use them. */
export const ACTIVE_STATUS_LIST = sqlList(ACTIVE_STATUSES);

/**
 * jsonb, written through jsonParam: drizzle's own jsonb sends JSON.stringify's text, which
 * PostgreSQL refuses when a string holds a lone UTF-16 surrogate (valid JSON from a
 * client), and the statement fails; a text column stores U+FFFD there, and so does this.
 * Read back as drizzle's jsonb reads it.
 */
const jsonb = customType<{ data: unknown; driverData: unknown }>({
  dataType: () => 'jsonb',
  toDriver: (value) => jsonParam(value),
  fromDriver: (value) => {
    if (typeof value !== 'string') return value;
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  },
});

const unixSeconds = (name: string) => bigint(name, { mode: 'number' });

export const runStatus = pgEnum('run_status', RUN_STATUSES);
export const messageRole = pgEnum('message_role', ['user', 'assistant']);
export const runStepType = pgEnum('run_step_type', ['message_creation', 'tool_calls']);
export const runStepStatus = pgEnum('run_step_status', ['in_progress', 'cancelled', 'failed', 'completed', 'expired']);
export const messageStatus = pgEnum('message_status', ['in_progress', 'completed', 'incomplete']);

/**
 * The tenant an object belongs to. Assistants, threads and runs carry it; messages,
 * steps and events are reached only through their thread or run, which were checked.
 */
const projectId = () => text('project_id').notNull();

export const assistants = pgTable(
  'assistants',
  {
    id: text('id').primaryKey(),
    projectId: projectId(),
    createdAt: unixSeconds('created_at').notNull(),
    model: text('model').notNull(),
    name: text('name'),
    description: text('description'),
    instructions: text('instructions'),
    tools: jsonb('tools').$type<Tool[]>().notNull().default([]),
    metadata: jsonb('metadata').$type<Metadata>().notNull().default({}),
    // What the assistant's runs take unless the run says otherwise (the Assistants API's defaults).
    temperature: doublePrecision('temperature').notNull().default(1),
    topP: doublePrecision('top_p').notNull().default(1),
    responseFormat: jsonb('response_format').$type<ResponseFormat>().notNull().default({ type: 'auto' }),
    /**
     * 1 at creation, +1 on every modify. A process keeps the assistants it read (see
     * findAssistant); createRun's statement makes a run only from the revision it was
     * given, so a run is never made from an assistant another process changed or deleted.
     */
    revision: integer('revision').notNull().default(1),
  },
  // The project's assistants, keyset-paginated on the id in both directions.
  (t) => [index('assistants_project_id_id_idx').on(t.projectId, t.id)],
);

export const threads = pgTable('threads', {
  id: text('id').primaryKey(),
  projectId: projectId(),
  createdAt: unixSeconds('created_at').notNull(),
  metadata: jsonb('metadata').$type<Metadata>().notNull().default({}),
  /** Runs created so far; the next run's threadSeq. Bumping it also locks the thread. */
  runCount: integer('run_count').notNull().default(0),
});

export const messages = pgTable(
  'messages',
  {
    id: text('id').primaryKey(),
    threadId: text('thread_id')
      .notNull()
      .references(() => threads.id, { onDelete: 'cascade' }),
    createdAt: unixSeconds('created_at').notNull(),
    role: messageRole('role').notNull(),
    /** The text; while the message is in_progress, the text written so far (it only grows). */
    content: text('content').notNull(),
    /** in_progress while a run writes it (from its first token), then completed or incomplete. */
    status: messageStatus('status').notNull().default('completed'),
    runId: text('run_id'),
    assistantId: text('assistant_id'),
    metadata: jsonb('metadata').$type<Metadata>().notNull().default({}),
  },
  (t) => [
    index('messages_thread_id_id_idx').on(t.threadId, t.id),
    // The messages being written (a handful at any time): found by their run when it ends.
    index('messages_in_progress_idx')
      .on(t.runId)
      .where(sql`status = 'in_progress'`),
  ],
);

export const runs = pgTable(
  'runs',
  {
    id: text('id').primaryKey(),
    /** Copied from the thread, so a run is found in its project with one primary-key read. */
    projectId: projectId(),
    threadId: text('thread_id')
      .notNull()
      .references(() => threads.id, { onDelete: 'cascade' }),
    /** No foreign key: a run outlives its assistant (deleting an assistant leaves its runs, as in the Assistants API). */
    assistantId: text('assistant_id').notNull(),
    createdAt: unixSeconds('created_at').notNull(),
    /**
     * 1 for the thread's first run, 2 for the next... A thread has one active run at a
     * time, so (threadSeq, version) orders all of a thread's events, across processes
     * and clocks.
     */
    threadSeq: integer('thread_seq').notNull().default(0),
    status: runStatus('status').notNull(),
    /**
     * The status before the latest transition. The transition UPDATE sets it from the
     * old row (`previous_status = status`), which gives the event its `from` without a
     * read-before-write.
     */
    previousStatus: runStatus('previous_status'),
    /** 1 at creation, +1 on every status change; orders the run's events. */
    version: integer('version').notNull().default(1),
    requiredAction: jsonb('required_action').$type<RequiredAction>(),
    lastError: jsonb('last_error').$type<RunError>(),
    expiresAt: unixSeconds('expires_at'),
    startedAt: unixSeconds('started_at'),
    cancelledAt: unixSeconds('cancelled_at'),
    failedAt: unixSeconds('failed_at'),
    completedAt: unixSeconds('completed_at'),
    incompleteDetails: jsonb('incomplete_details').$type<IncompleteDetails>(),
    model: text('model').notNull(),
    instructions: text('instructions').notNull(),
    additionalInstructions: text('additional_instructions'),
    tools: jsonb('tools').$type<Tool[]>().notNull().default([]),
    metadata: jsonb('metadata').$type<Metadata>().notNull().default({}),
    usage: jsonb('usage').$type<RunUsage>(),
    temperature: doublePrecision('temperature'),
    topP: doublePrecision('top_p'),
    maxPromptTokens: integer('max_prompt_tokens'),
    maxCompletionTokens: integer('max_completion_tokens'),
    truncationStrategy: jsonb('truncation_strategy').$type<TruncationStrategy>(),
    toolChoice: jsonb('tool_choice').$type<ToolChoice>(),
    parallelToolCalls: boolean('parallel_tool_calls').notNull().default(true),
    responseFormat: jsonb('response_format').$type<ResponseFormat>(),
    /**
     * The claim of the worker executing the run (in_progress or cancelling only): who,
     * a token new at every claim (the engine's writes are guarded by it, so a worker that
     * lost its lease can no longer record anything), and until when it holds, on the
     * database clock.
     */
    workerId: text('worker_id'),
    leaseToken: uuid('lease_token'),
    leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true }),
    /**
     * The W3C traceparent of the request that created the run, when tracing is on: the
     * worker's span of the run continues that trace, in whichever process claims it.
     */
    traceparent: text('traceparent'),
  },
  (t) => [
    // Keyset pagination of a thread's runs, in both directions.
    index('runs_thread_id_id_idx').on(t.threadId, t.id),
    // The queue, by project: workers find the projects waiting and their oldest queued
    // runs in this small partial index (see the claim in runs/sql/queue.ts).
    index('runs_queued_idx')
      .on(t.projectId, t.id)
      .where(sql`status = 'queued'`),
    // Lapsed leases, for takeover after a worker died.
    index('runs_leased_idx')
      .on(t.leaseExpiresAt)
      .where(sql.raw(`status in (${sqlList(LEASED_STATUSES)})`)),
    // The expiry sweeper's scan of active runs.
    index('runs_active_expires_at_idx')
      .on(t.expiresAt)
      .where(sql.raw(`status in (${ACTIVE_STATUS_LIST})`)),
    // The database, not only the code, keeps a thread to one active run at a time.
    uniqueIndex('runs_one_active_per_thread')
      .on(t.threadId)
      .where(sql.raw(`status in (${ACTIVE_STATUS_LIST})`)),
  ],
);

/** Every status change of every run, in per-run version order: the run's history. */
export const runEvents = pgTable(
  'run_events',
  {
    runId: text('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    threadId: text('thread_id').notNull(),
    threadSeq: integer('thread_seq').notNull().default(0),
    fromStatus: runStatus('from_status'),
    toStatus: runStatus('to_status').notNull(),
    at: unixSeconds('at').notNull(),
    /**
     * What of the run this change left as it is, of the fields that change with the status
     * (see runs/sql/history.ts's RUN_STATE), written by the statement that made the change:
     * an event's `run` is the run as of the event, not as of its delivery.
     */
    runState: jsonb('run_state').$type<RunState>(),
  },
  (t) => [
    primaryKey({ columns: [t.runId, t.version] }),
    // A thread's history in order, for resuming threadRunsChanged from a cursor.
    index('run_events_thread_order_idx').on(t.threadId, t.threadSeq, t.version),
    // Retention: the runs that ended before a time, oldest first, are the terminal events
    // still kept (a run's history goes with its terminal event, so what is pruned leaves it).
    index('run_events_terminal_at_idx')
      .on(t.at)
      .where(sql.raw(`to_status in (${sqlList(TERMINAL_STATUSES)})`)),
  ],
);

/**
 * How far a thread's event history was pruned (RUN_EVENTS_RETENTION_DAYS): the position
 * (threadSeq, version, sub) of the last event deleted. A resume from a cursor before it
 * lacks events and is refused as CURSOR_EXPIRED; one at or after it lacks nothing. The
 * runs of a thread end in order, so what is pruned is always the start of its history.
 */
export const eventHistoryFloors = pgTable('event_history_floors', {
  threadId: text('thread_id')
    .primaryKey()
    .references(() => threads.id, { onDelete: 'cascade' }),
  threadSeq: integer('thread_seq').notNull(),
  version: integer('version').notNull(),
  sub: integer('sub').notNull(),
  prunedAt: unixSeconds('pruned_at').notNull(),
});

/**
 * What happened inside a run between two status changes: a message created, completed or
 * left incomplete; a step's status change. An event after the run's status event of
 * version v is placed at (version v, sub 1, 2, ...): with the status events at sub 0,
 * (threadSeq, version, sub) orders all of a thread's durable events. Written in the
 * statement or transaction that made the change, under the run's row lock, so the order
 * of positions is the order of commits.
 */
export const runItemEvents = pgTable(
  'run_item_events',
  {
    runId: text('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    sub: integer('sub').notNull(),
    threadId: text('thread_id').notNull(),
    threadSeq: integer('thread_seq').notNull(),
    /** 'message' or 'step'. */
    kind: text('kind').$type<'message' | 'step'>().notNull(),
    /** The message's or the step's id. */
    itemId: text('item_id').notNull(),
    /** A message's created / completed / incomplete; a step's new status. */
    change: text('change').notNull(),
    at: unixSeconds('at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.runId, t.version, t.sub] }),
    index('run_item_events_thread_order_idx').on(t.threadId, t.threadSeq, t.version, t.sub),
  ],
);

/**
 * What a run did, step by step. A TOOL_CALLS step is opened when the run enters
 * requires_action and holds the calls; submitted outputs are written into it, so the
 * engine finds them there when the run is picked up again.
 */
export const runSteps = pgTable(
  'run_steps',
  {
    id: text('id').primaryKey(),
    runId: text('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    threadId: text('thread_id').notNull(),
    assistantId: text('assistant_id').notNull(),
    createdAt: unixSeconds('created_at').notNull(),
    type: runStepType('type').notNull(),
    status: runStepStatus('status').notNull(),
    stepDetails: jsonb('step_details').$type<StepDetails>().notNull(),
    lastError: jsonb('last_error').$type<RunError>(),
    completedAt: unixSeconds('completed_at'),
    cancelledAt: unixSeconds('cancelled_at'),
    failedAt: unixSeconds('failed_at'),
    expiredAt: unixSeconds('expired_at'),
    usage: jsonb('usage').$type<RunUsage>(),
  },
  (t) => [index('run_steps_run_id_id_idx').on(t.runId, t.id)],
);

/**
 * API keys kept in the database (`npm run key:create`), besides those of API_KEYS. Only
 * the key's SHA-256 is stored: a leaked table gives no one a key.
 */
export const apiKeys = pgTable('api_keys', {
  id: text('id').primaryKey(),
  projectId: text('project_id').notNull(),
  keyHash: text('key_hash').notNull().unique(),
  createdAt: unixSeconds('created_at').notNull(),
  /** When the key was revoked (`npm run key:revoke`, database clock): every process refuses it within a second. */
  revokedAt: unixSeconds('revoked_at'),
});

/**
 * Idempotency keys of creating mutations: a retry with a key already used gets the first
 * result (`resultId`) instead of a second object, provided it asks the same thing
 * (`fingerprint`). Written in the same transaction as the object created; swept after
 * IDEMPOTENCY_KEY_HOURS.
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    projectId: projectId(),
    key: text('key').notNull(),
    /** The mutation that used the key. */
    operation: text('operation').notNull(),
    /** SHA-256 of the operation and its input, in a canonical form. */
    fingerprint: text('fingerprint').notNull(),
    /** The id of what the first request created (for submitToolOutputs, the run). */
    resultId: text('result_id').notNull(),
    createdAt: unixSeconds('created_at').notNull(),
  },
  (t) => [
    primaryKey({ name: 'idempotency_keys_pkey', columns: [t.projectId, t.key] }),
    // The sweeper deletes the oldest first.
    index('idempotency_keys_created_at_idx').on(t.createdAt),
    // A delete takes the keys that name what it deletes with it.
    index('idempotency_keys_result_id_idx').on(t.resultId),
  ],
);

/**
 * Announcements waiting to be relayed to Redis (with REDIS_URL): a write that records run
 * events adds its announcement here in the same transaction, and a relay publishes and
 * deletes it after the commit, so a process that dies in between loses nothing (another
 * process's relay publishes it). With PostgreSQL NOTIFY this table stays empty.
 */
export const eventOutbox = pgTable('event_outbox', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  /** The events' lines, as realtime/event-codec writes them. */
  payload: text('payload').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/** The fields of a run that a status change may change. */
export type RunState = Pick<
  typeof runs.$inferSelect,
  | 'status'
  | 'previousStatus'
  | 'version'
  | 'requiredAction'
  | 'lastError'
  | 'expiresAt'
  | 'startedAt'
  | 'cancelledAt'
  | 'failedAt'
  | 'completedAt'
  | 'incompleteDetails'
  | 'usage'
>;

export type AssistantRow = typeof assistants.$inferSelect;
export type ThreadRow = typeof threads.$inferSelect;
export type MessageRow = typeof messages.$inferSelect;
export type RunRow = typeof runs.$inferSelect;
export type RunStepRow = typeof runSteps.$inferSelect;

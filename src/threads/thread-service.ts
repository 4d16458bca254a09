/**
 * Threads and their messages. Adding a message takes a share lock on the thread, which
 * conflicts with createRun's update lock: a message can never slip in beside an active run.
 */
import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import type { Db, Executor, Tx } from '../db/client.js';
import { preparedPer } from '../db/prepared.js';
import { rowRead } from '../db/row-reads.js';
import { planKeysetPage, readList, type ListArgs, type ListPage, type Page, type PageArgs } from '../db/keyset.js';
import { messages, runItemEvents, runs, threads, type MessageRow, type ThreadRow } from '../db/schema.js';
import { deletion, type Deletion } from '../domain/deletion.js';
import { MessageInProgressError, NotFoundError, ThreadHasActiveRunError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import type { Metadata } from '../domain/run.js';
import { ACTIVE_STATUSES } from '../domain/run-lifecycle.js';
import { forgetResults, idempotentRequest, once, recordKey } from '../idempotency/idempotency.js';

export interface CreateMessageInput {
  role: 'user' | 'assistant';
  content: string;
  metadata?: Metadata | null;
}

export interface CreateThreadInput {
  messages?: CreateMessageInput[] | null;
  metadata?: Metadata | null;
}

/** What a modify of a thread or a message changes: metadata given replaces the old whole; left out, it stays. */
export interface ModifyMetadataInput {
  metadata?: Metadata | null | undefined;
}

/** A page of a thread's messages: its arguments, and only the messages a run wrote, if `runId` is given. */
export type MessagePageArgs = PageArgs & { runId?: string | null | undefined };

/** The same, as the Assistants API lists messages (its `run_id` filter). */
export type MessageListArgs = ListArgs & { runId?: string | null | undefined };

/** Rows per insert of a new thread's messages: well within PostgreSQL's parameter limit. */
const MESSAGES_PER_INSERT = 5000;

export class ThreadService {
  constructor(private readonly deps: { db: Db; clock: () => number }) {}

  /** A new thread with its messages; with an idempotency key, a retry gets the first one. */
  async create(projectId: string, input: CreateThreadInput = {}, idempotencyKey?: string | null): Promise<ThreadRow> {
    const { db, clock } = this.deps;
    const now = clock();
    const request = idempotentRequest(projectId, idempotencyKey, 'createThread', input);
    const create = () =>
      db.transaction(async (tx) => {
        const thread = await insertThread(tx, projectId, now, input);
        if (request) await recordKey(tx, request, thread.id, now);
        return thread;
      });
    return once(db, request, create, (id) => this.get(projectId, id));
  }

  /** The thread, if it exists in this project. */
  async get(projectId: string, id: string): Promise<ThreadRow | undefined> {
    const [row] = await threadInProject(this.deps.db).execute({ id, projectId });
    return row;
  }

  /** A new message; with an idempotency key, a retry gets the first one. */
  async createMessage(projectId: string, threadId: string, input: CreateMessageInput, idempotencyKey?: string | null): Promise<MessageRow> {
    const { db, clock } = this.deps;
    const now = clock();
    const request = idempotentRequest(projectId, idempotencyKey, 'createMessage', { threadId, input });
    const create = () =>
      db.transaction(async (tx) => {
        await lockThread(tx, projectId, threadId, 'share');
        const active = await findActiveRunId(tx, threadId);
        if (active) throw new ThreadHasActiveRunError(threadId, active);
        const [row] = await tx
          .insert(messages)
          .values(newMessage(threadId, now, input))
          .returning();
        if (!row) throw new Error('insert returned no row');
        if (request) await recordKey(tx, request, row.id, now);
        return row;
      });
    return once(db, request, create, (id) => this.getMessage(projectId, id));
  }

  /** The message, if its thread is in this project. */
  async getMessage(projectId: string, id: string): Promise<MessageRow | undefined> {
    const [row] = await this.deps.db
      .select({ message: messages })
      .from(messages)
      .innerJoin(threads, eq(threads.id, messages.threadId))
      .where(and(eq(messages.id, id), eq(threads.projectId, projectId)));
    return row?.message;
  }

  /** A thread's messages, for a thread already known to be the caller's (newest first by default). */
  async listMessages(threadId: string, args: MessagePageArgs): Promise<Page<MessageRow>> {
    const plan = planKeysetPage(args, 'msg');
    if (args.runId == null && args.after == null && args.before == null && args.last == null) {
      const read = (args.order ?? 'desc') === 'asc' ? firstMessagesAscending : firstMessagesDescending;
      return plan.page(await read(this.deps.db, { threadId, limit: plan.limit }));
    }
    const rows = await this.deps.db
      .select()
      .from(messages)
      .where(and(eq(messages.threadId, threadId), args.runId != null ? eq(messages.runId, args.runId) : undefined, plan.where(messages.id)))
      .orderBy(plan.orderBy(messages.id))
      .limit(plan.limit);
    return plan.page(rows);
  }

  /**
   * A page of the thread's messages as the Assistants API lists them (object ids as
   * cursors, newest first by default, `runId` its `run_id` filter); NOT_FOUND when the
   * project has no such thread.
   */
  listThreadMessages(projectId: string, threadId: string, args: MessageListArgs = {}): Promise<ListPage<MessageRow>> {
    return readList(args, 'msg', async (pageArgs) => {
      await this.requireThread(projectId, threadId);
      return this.listMessages(threadId, { ...pageArgs, runId: args.runId });
    });
  }

  /** The message, if it is one of that thread's, in this project. One statement. */
  async getThreadMessage(projectId: string, threadId: string, messageId: string): Promise<MessageRow | undefined> {
    const [row] = await messageOfThreadInProject(this.deps.db).execute({ projectId, threadId, messageId });
    return row?.message;
  }

  /** Replaces the thread's metadata if given; NOT_FOUND when the project has no such thread. One statement. */
  async modify(projectId: string, threadId: string, input: ModifyMetadataInput): Promise<ThreadRow> {
    const [row] =
      input.metadata === undefined
        ? await threadInProject(this.deps.db).execute({ id: threadId, projectId })
        : await this.deps.db
            .update(threads)
            .set({ metadata: input.metadata ?? {} })
            .where(and(eq(threads.id, threadId), eq(threads.projectId, projectId)))
            .returning();
    if (!row) throw new NotFoundError('thread', threadId);
    return row;
  }

  /**
   * Deletes the thread and everything of it: its messages, its runs with their steps and
   * events (foreign keys that cascade), and the idempotency keys naming any of them. A
   * thread with an active run is refused (THREAD_HAS_ACTIVE_RUN): the run must be
   * cancelled, or end, first, so that no worker is executing anything of the thread.
   */
  async delete(projectId: string, threadId: string): Promise<Deletion<'thread.deleted'>> {
    await this.deps.db.transaction(async (tx) => {
      // The update lock waits for a createRun or createMessage under way, and holds the next off.
      await lockThread(tx, projectId, threadId, 'update');
      const active = await findActiveRunId(tx, threadId);
      if (active) throw new ThreadHasActiveRunError(threadId, active, 'deleting the thread');
      await forgetResults(
        tx,
        projectId,
        sql`select ${threadId}::text union all select ${messages.id} from ${messages} where ${messages.threadId} = ${threadId}
          union all select ${runs.id} from ${runs} where ${runs.threadId} = ${threadId}`,
      );
      await tx.delete(threads).where(eq(threads.id, threadId));
    });
    return deletion('thread.deleted', threadId);
  }

  /** Replaces the message's metadata if given, whatever its status; NOT_FOUND as getThreadMessage. */
  async modifyMessage(projectId: string, threadId: string, messageId: string, input: ModifyMetadataInput): Promise<MessageRow> {
    const [row] =
      input.metadata === undefined
        ? [await this.getThreadMessage(projectId, threadId, messageId)]
        : await this.deps.db
            .update(messages)
            .set({ metadata: input.metadata ?? {} })
            .where(and(eq(messages.id, messageId), eq(messages.threadId, threadId), threadInProjectCondition(projectId)))
            .returning();
    if (!row) throw await this.missing(projectId, threadId, messageId);
    return row;
  }

  /**
   * Deletes the message, with its events and its idempotency key. Refused while the
   * thread has an active run (THREAD_HAS_ACTIVE_RUN, as createMessage: a thread's messages
   * change only between runs, and a run's events are numbered after its latest), and
   * first of all for the message that run is writing (MESSAGE_IN_PROGRESS).
   */
  async deleteMessage(projectId: string, threadId: string, messageId: string): Promise<Deletion<'thread.message.deleted'>> {
    await this.deps.db.transaction(async (tx) => {
      // As createMessage: the share lock keeps a new run off the thread meanwhile.
      await lockThread(tx, projectId, threadId, 'share');
      const [message] = await tx
        .select({ status: messages.status, runId: messages.runId })
        .from(messages)
        .where(and(eq(messages.id, messageId), eq(messages.threadId, threadId)));
      if (!message) throw new NotFoundError('message', messageId);
      if (message.status === 'in_progress') throw new MessageInProgressError(messageId, message.runId);
      const active = await findActiveRunId(tx, threadId);
      if (active) throw new ThreadHasActiveRunError(threadId, active, 'deleting one of its messages');
      // Its run is over (the thread has no active run): no event will be numbered after these.
      if (message.runId) {
        await tx
          .delete(runItemEvents)
          .where(and(eq(runItemEvents.runId, message.runId), eq(runItemEvents.kind, 'message'), eq(runItemEvents.itemId, messageId)));
      }
      await forgetResults(tx, projectId, [messageId]);
      await tx.delete(messages).where(eq(messages.id, messageId));
    });
    return deletion('thread.message.deleted', messageId);
  }

  /** NOT_FOUND for the thread when the project has none, else for the message. */
  private async missing(projectId: string, threadId: string, messageId: string): Promise<NotFoundError> {
    await this.requireThread(projectId, threadId);
    return new NotFoundError('message', messageId);
  }

  private async requireThread(projectId: string, threadId: string): Promise<void> {
    if (!(await threadExists(this.deps.db, projectId, threadId))) throw new NotFoundError('thread', threadId);
  }

  /** Those of these threads that are in this project (a node lookup), in no particular order: one statement. */
  async manyInProject(projectId: string, ids: readonly string[]): Promise<ThreadRow[]> {
    return threadsInProject(this.deps.db).execute({ ids: [...ids], projectId });
  }

  /** Those of these messages whose thread is in this project (a node lookup), in no particular order: one statement. */
  async messagesInProject(projectId: string, ids: readonly string[]): Promise<MessageRow[]> {
    const rows = await messagesInProject(this.deps.db).execute({ ids: [...ids], projectId });
    return rows.map((row) => row.message);
  }
}

/** The first page of a thread's messages, in either order (what a chat reads): a row read (db/row-reads.ts). */
const firstMessages = (order: 'asc' | 'desc') =>
  rowRead(messages, (db) =>
    db
      .select()
      .from(messages)
      .where(eq(messages.threadId, sql.placeholder('threadId')))
      .orderBy(order === 'asc' ? asc(messages.id) : desc(messages.id))
      .limit(sql.placeholder('limit')),
  );

const firstMessagesAscending = firstMessages('asc');

const firstMessagesDescending = firstMessages('desc');

const threadInProject = preparedPer((ex) =>
  ex
    .select()
    .from(threads)
    .where(and(eq(threads.id, sql.placeholder('id')), eq(threads.projectId, sql.placeholder('projectId'))))
    .prepare('thread_in_project'),
);

const threadsInProject = preparedPer((ex) =>
  ex
    .select()
    .from(threads)
    .where(and(sql`${threads.id} = any(${sql.placeholder('ids')}::text[])`, eq(threads.projectId, sql.placeholder('projectId'))))
    .prepare('threads_in_project'),
);

const messagesInProject = preparedPer((ex) =>
  ex
    .select({ message: messages })
    .from(messages)
    .innerJoin(threads, eq(threads.id, messages.threadId))
    .where(and(sql`${messages.id} = any(${sql.placeholder('ids')}::text[])`, eq(threads.projectId, sql.placeholder('projectId'))))
    .prepare('messages_in_project'),
);

/** The message row's thread is in the project (a condition on messages, for updates). */
const threadInProjectCondition = (projectId: string) =>
  sql`exists (select 1 from ${threads} where ${threads.id} = ${messages.threadId} and ${threads.projectId} = ${projectId})`;

const messageOfThreadInProject = preparedPer((ex) =>
  ex
    .select({ message: messages })
    .from(messages)
    .innerJoin(threads, eq(threads.id, messages.threadId))
    .where(
      and(
        eq(messages.id, sql.placeholder('messageId')),
        eq(messages.threadId, sql.placeholder('threadId')),
        eq(threads.projectId, sql.placeholder('projectId')),
      ),
    )
    .prepare('message_of_thread_in_project'),
);

const threadIdInProject = preparedPer((ex) =>
  ex
    .select({ id: threads.id })
    .from(threads)
    .where(and(eq(threads.id, sql.placeholder('id')), eq(threads.projectId, sql.placeholder('projectId'))))
    .prepare('thread_id_in_project'),
);

/**
 * Writes a new thread and its messages (in the order given) in the caller's transaction:
 * createThread's, or one that also creates the thread's first run.
 */
export async function insertThread(tx: Tx, projectId: string, now: number, input: CreateThreadInput): Promise<ThreadRow> {
  const [thread] = await tx
    .insert(threads)
    .values({ id: newId('thread'), projectId, createdAt: now, metadata: input.metadata ?? {} })
    .returning();
  if (!thread) throw new Error('insert returned no row');
  // A statement takes at most 65,535 parameters (six a message): a long list goes in parts.
  const rows = (input.messages ?? []).map((m) => newMessage(thread.id, now, m));
  for (let i = 0; i < rows.length; i += MESSAGES_PER_INSERT) {
    await tx.insert(messages).values(rows.slice(i, i + MESSAGES_PER_INSERT));
  }
  return thread;
}

/** Whether the thread exists in this project. */
/**
 * Locks the project's thread for the rest of the transaction, or NOT_FOUND: `share` keeps a
 * new run off it (and waits for one being made), `update` holds off every other write.
 */
async function lockThread(tx: Tx, projectId: string, threadId: string, mode: 'share' | 'update'): Promise<void> {
  const [thread] = await tx
    .select({ id: threads.id })
    .from(threads)
    .where(and(eq(threads.id, threadId), eq(threads.projectId, projectId)))
    .for(mode);
  if (!thread) throw new NotFoundError('thread', threadId);
}

export async function threadExists(ex: Executor, projectId: string, id: string): Promise<boolean> {
  return (await threadIdInProject(ex).execute({ id, projectId })).length > 0;
}

/** The row of a new user or assistant message (ids in creation order). */
export function newMessage(threadId: string, createdAt: number, m: CreateMessageInput) {
  return { id: newId('msg'), threadId, createdAt, role: m.role, content: m.content, metadata: m.metadata ?? {} };
}

/**
 * The thread's active run, if it has one (a thread has at most one: queued, in progress,
 * waiting for tool outputs, or cancelling). Messages cannot be added beside it.
 */
export async function findActiveRunId(ex: Executor, threadId: string): Promise<string | undefined> {
  const [row] = await ex
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.threadId, threadId), inArray(runs.status, [...ACTIVE_STATUSES])))
    .limit(1);
  return row?.id;
}

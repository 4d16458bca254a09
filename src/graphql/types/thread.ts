import type { ThreadRow } from '../../db/schema.js';
import type { CreateThreadInput as CreateThreadUseCase } from '../../threads/thread-service.js';
import { checkAnswerBudget, countedJson } from '../answer-budget.js';
import { builder } from '../builder.js';
import { inOrderOf } from '../global-ids.js';
import { metadataSchema } from '../../domain/input-rules.js';
import { DeletionRef, idempotencyKeyArgs, metadataArg, orderArg } from './common.js';
import { CreateMessageInput, MessageConnection, MessageRef } from './message.js';
import { RunConnection, runListArgs, runOptionFields, RunRef, toRunOptions } from './run.js';

export const ThreadRef = builder.node(builder.objectRef<ThreadRow>('Thread'), {
  id: { resolve: (th) => th.id },
  loadMany: async (ids, ctx) => inOrderOf(ids, await ctx.threads.manyInProject(ctx.projectId, ids)),
  fields: (t) => ({
    object: t.string({ resolve: () => 'thread' }),
    createdAt: t.expose('createdAt', { type: 'UnixTime' }),
    metadata: t.field({ type: 'Metadata', resolve: (th, _, ctx) => countedJson(ctx, th.metadata) }),
    messages: t.connection(
      {
        type: MessageRef,
        description: 'Newest first unless order is ASC.',
        args: { ...orderArg('desc'), runId: t.arg.id({ description: 'Only the messages this run wrote.' }) },
        resolve: (thread, { runId, ...args }, ctx) => (
          checkAnswerBudget(ctx),
          ctx.threads.listMessages(thread.id, { ...args, runId: runId == null ? null : String(runId) })
        ),
      },
      MessageConnection,
    ),
    runs: t.connection(
      {
        type: RunRef,
        args: runListArgs,
        resolve: (thread, args, ctx) => (checkAnswerBudget(ctx), ctx.runs.listOfThread(thread, args, args.status)),
      },
      RunConnection,
    ),
  }),
});

const CreateThreadInput = builder.inputType('CreateThreadInput', {
  fields: (t) => ({
    messages: t.field({ type: [CreateMessageInput] }),
    metadata: t.field({ type: 'Metadata', validate: metadataArg }),
  }),
});

builder.queryFields((t) => ({
  thread: t.field({
    type: ThreadRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => ctx.threads.get(ctx.projectId, String(id)),
  }),
}));

const CreateThreadAndRunInput = builder.inputType('CreateThreadAndRunInput', {
  description: "A new thread and a run on it: the run's options are createRun's, less what adds to an existing thread.",
  fields: (t) => ({
    thread: t.field({ type: CreateThreadInput, description: 'The new thread: its messages, in order, and metadata.' }),
    ...runOptionFields(t),
  }),
});

builder.mutationFields((t) => ({
  createThread: t.field({
    type: ThreadRef,
    args: { input: t.arg({ type: CreateThreadInput }), ...idempotencyKeyArgs },
    resolve: (_, { input, idempotencyKey }, ctx) => ctx.threads.create(ctx.projectId, toCreateThread(input), idempotencyKey),
  }),
  modifyThread: t.field({
    type: ThreadRef,
    description: "Replaces the thread's metadata; allowed while a run is active.",
    args: {
      threadId: t.arg.id({ required: true }),
      metadata: t.arg({ type: 'Metadata', required: true, validate: { schema: metadataSchema } }),
    },
    resolve: (_, { threadId, metadata }, ctx) =>
      ctx.threads.modify(ctx.projectId, String(threadId), { metadata: metadata as Record<string, string> }),
  }),
  deleteThread: t.field({
    type: DeletionRef,
    description:
      'Deletes the thread with its messages, runs, steps and events. Fails with THREAD_HAS_ACTIVE_RUN while a run is active: cancel it (or let it end) first.',
    args: { threadId: t.arg.id({ required: true }) },
    resolve: (_, { threadId }, ctx) => ctx.threads.delete(ctx.projectId, String(threadId)),
  }),
  createThreadAndRun: t.field({
    type: RunRef,
    description:
      "Creates a thread with its messages and a run on it, in one transaction: a run that cannot be created leaves no thread. The new thread is the run's `threadId`.",
    args: { input: t.arg({ type: CreateThreadAndRunInput, required: true }), ...idempotencyKeyArgs },
    resolve: (_, { input, idempotencyKey }, ctx) =>
      ctx.runs.createThreadAndRun(ctx.projectId, { ...toRunOptions(input), thread: toCreateThread(input.thread) }, idempotencyKey),
  }),
}));

/** A new thread's input for the use cases. */
function toCreateThread(input: typeof CreateThreadInput.$inferInput | null | undefined): CreateThreadUseCase {
  return {
    metadata: input?.metadata as Record<string, string> | null | undefined,
    messages: input?.messages?.map((m) => ({
      role: m.role,
      content: m.content,
      metadata: m.metadata as Record<string, string> | null | undefined,
    })),
  };
}

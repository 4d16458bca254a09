import type { MessageRow } from '../../db/schema.js';
import { counted, countedJson } from '../answer-budget.js';
import { builder } from '../builder.js';
import { messageContentSchema, metadataSchema } from '../../domain/input-rules.js';
import { inOrderOf } from '../global-ids.js';
import { DeletionRef, idempotencyKeyArgs, metadataArg } from './common.js';

export const MessageRole = builder.enumType('MessageRole', {
  values: { USER: { value: 'user' }, ASSISTANT: { value: 'assistant' } } as const,
});

export const MessageStatusEnum = builder.enumType('MessageStatus', {
  description: 'IN_PROGRESS while a run writes it (from its first token), then COMPLETED, or INCOMPLETE when the run stopped first.',
  values: { IN_PROGRESS: { value: 'in_progress' }, COMPLETED: { value: 'completed' }, INCOMPLETE: { value: 'incomplete' } } as const,
});

export const MessageRef = builder.node(builder.objectRef<MessageRow>('Message'), {
  id: { resolve: (m) => m.id },
  loadMany: async (ids, ctx) => inOrderOf(ids, await ctx.threads.messagesInProject(ctx.projectId, ids)),
  fields: (t) => ({
    object: t.string({ resolve: () => 'thread.message' }),
    threadId: t.exposeID('threadId'),
    role: t.field({ type: MessageRole, resolve: (m) => m.role }),
    text: t.string({
      description: "The message's text; while IN_PROGRESS, the text written so far.",
      resolve: (m, _, ctx) => counted(ctx, m.content),
    }),
    status: t.field({ type: MessageStatusEnum, resolve: (m) => m.status }),
    runId: t.exposeID('runId', { nullable: true, description: 'The run that wrote it, for assistant messages.' }),
    assistantId: t.exposeID('assistantId', { nullable: true }),
    metadata: t.field({ type: 'Metadata', resolve: (m, _, ctx) => countedJson(ctx, m.metadata) }),
    createdAt: t.expose('createdAt', { type: 'UnixTime' }),
  }),
});

export const MessageConnection = builder.connectionObject({ type: MessageRef, name: 'MessageConnection' });

export const CreateMessageInput = builder.inputType('CreateMessageInput', {
  fields: (t) => ({
    role: t.field({ type: MessageRole, required: true }),
    content: t.string({ required: true, validate: { schema: messageContentSchema } }),
    metadata: t.field({ type: 'Metadata', validate: metadataArg }),
  }),
});

builder.queryFields((t) => ({
  message: t.field({
    type: MessageRef,
    nullable: true,
    description: 'The message, or null when the thread has no such message.',
    args: { threadId: t.arg.id({ required: true }), messageId: t.arg.id({ required: true }) },
    resolve: (_, { threadId, messageId }, ctx) => ctx.threads.getThreadMessage(ctx.projectId, String(threadId), String(messageId)),
  }),
}));

builder.mutationFields((t) => ({
  createMessage: t.field({
    type: MessageRef,
    description: 'Adds a message; fails with THREAD_HAS_ACTIVE_RUN while a run is active.',
    args: {
      threadId: t.arg.id({ required: true }),
      input: t.arg({ type: CreateMessageInput, required: true }),
      ...idempotencyKeyArgs,
    },
    resolve: (_, { threadId, input, idempotencyKey }, ctx) =>
      ctx.threads.createMessage(
        ctx.projectId,
        String(threadId),
        {
          role: input.role,
          content: input.content,
          metadata: input.metadata as Record<string, string> | null | undefined,
        },
        idempotencyKey,
      ),
  }),
  modifyMessage: t.field({
    type: MessageRef,
    description: "Replaces the message's metadata; allowed in every status.",
    args: {
      threadId: t.arg.id({ required: true }),
      messageId: t.arg.id({ required: true }),
      metadata: t.arg({ type: 'Metadata', required: true, validate: { schema: metadataSchema } }),
    },
    resolve: (_, { threadId, messageId, metadata }, ctx) =>
      ctx.threads.modifyMessage(ctx.projectId, String(threadId), String(messageId), { metadata: metadata as Record<string, string> }),
  }),
  deleteMessage: t.field({
    type: DeletionRef,
    description:
      'Deletes the message. Fails with MESSAGE_IN_PROGRESS while its run writes it, and with THREAD_HAS_ACTIVE_RUN while the thread has an active run.',
    args: { threadId: t.arg.id({ required: true }), messageId: t.arg.id({ required: true }) },
    resolve: (_, { threadId, messageId }, ctx) => ctx.threads.deleteMessage(ctx.projectId, String(threadId), String(messageId)),
  }),
}));

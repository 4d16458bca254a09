/** RunStep: what a run did, step by step (Run.steps and the runStep query). */
import type { RunStepRow } from '../../db/schema.js';
import type { StepDetails, ToolCallWithOutput } from '../../domain/run.js';
import type { StepPageKey } from '../../runs/index.js';
import { checkAnswerBudget, counted } from '../answer-budget.js';
import { builder } from '../builder.js';
import { inOrderOf } from '../global-ids.js';
import { orderArg } from './common.js';
import { RunRef } from './run.js';
import { RunErrorRef, RunUsageRef } from './run-parts.js';

const RunStepType = builder.enumType('RunStepType', {
  values: { MESSAGE_CREATION: { value: 'message_creation' }, TOOL_CALLS: { value: 'tool_calls' } } as const,
});

const RunStepStatus = builder.enumType('RunStepStatus', {
  values: {
    IN_PROGRESS: { value: 'in_progress' },
    CANCELLED: { value: 'cancelled' },
    FAILED: { value: 'failed' },
    COMPLETED: { value: 'completed' },
    EXPIRED: { value: 'expired' },
  } as const,
});

const StepToolCallFunction = builder.objectRef<ToolCallWithOutput['function']>('StepToolCallFunction').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    arguments: t.string({ resolve: (f, _, ctx) => counted(ctx, f.arguments) }),
    output: t.string({
      nullable: true,
      description: 'Null until the output is submitted.',
      resolve: (f, _, ctx) => counted(ctx, f.output),
    }),
  }),
});

const StepToolCall = builder.objectRef<ToolCallWithOutput>('StepToolCall').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    type: t.exposeString('type'),
    function: t.field({ type: StepToolCallFunction, resolve: (c) => c.function }),
  }),
});

const MessageCreation = builder.objectRef<{ messageId: string }>('MessageCreation').implement({
  fields: (t) => ({ messageId: t.exposeID('messageId') }),
});

const StepDetailsRef = builder.objectRef<StepDetails>('StepDetails').implement({
  fields: (t) => ({
    type: t.field({ type: RunStepType, resolve: (d) => d.type }),
    messageCreation: t.field({
      type: MessageCreation,
      nullable: true,
      resolve: (d) => (d.type === 'message_creation' ? d.messageCreation : null),
    }),
    toolCalls: t.field({
      type: [StepToolCall],
      nullable: true,
      resolve: (d) => (d.type === 'tool_calls' ? d.toolCalls : null),
    }),
  }),
});

export const RunStepRef = builder.node(builder.objectRef<RunStepRow>('RunStep'), {
  id: { resolve: (s) => s.id },
  loadMany: async (ids, ctx) => inOrderOf(ids, await ctx.runs.stepsInProject(ctx.projectId, ids)),
  fields: (t) => ({
    object: t.string({ resolve: () => 'thread.run.step' }),
    createdAt: t.expose('createdAt', { type: 'UnixTime' }),
    runId: t.exposeID('runId'),
    threadId: t.exposeID('threadId'),
    assistantId: t.exposeID('assistantId'),
    type: t.field({ type: RunStepType, resolve: (s) => s.type }),
    status: t.field({ type: RunStepStatus, resolve: (s) => s.status }),
    stepDetails: t.field({ type: StepDetailsRef, resolve: (s) => s.stepDetails }),
    lastError: t.field({ type: RunErrorRef, nullable: true, resolve: (s) => s.lastError }),
    completedAt: t.expose('completedAt', { type: 'UnixTime', nullable: true }),
    cancelledAt: t.expose('cancelledAt', { type: 'UnixTime', nullable: true }),
    failedAt: t.expose('failedAt', { type: 'UnixTime', nullable: true }),
    expiredAt: t.expose('expiredAt', { type: 'UnixTime', nullable: true }),
    usage: t.field({ type: RunUsageRef, nullable: true, resolve: (s) => s.usage }),
  }),
});

const RunStepConnection = builder.connectionObject({ type: RunStepRef, name: 'RunStepConnection' });

builder.objectField(RunRef, 'steps', (t) =>
  t.loadable({
    type: RunStepConnection,
    description: "The run's steps, oldest first unless order is DESC.",
    args: { ...t.arg.connectionArgs(), ...orderArg('asc') },
    // The pages asked for by every run of a request are read together (first pages: one
    // statement). Batched, not cached: a subscription keeps its context for its lifetime,
    // and each event reads the steps as they are then.
    loaderOptions: { cache: false },
    load: (keys: StepPageKey[], ctx) => eachSettled(ctx.runs.stepPages(keys)),
    resolve: (run, args, ctx) => (checkAnswerBudget(ctx), { runId: run.id, ...args }),
  }),
);

/** Each key's page, or the error that key alone failed with (a batch loader's answer). */
async function eachSettled<T>(pages: Promise<T>[]): Promise<(T | Error)[]> {
  const settled = await Promise.allSettled(pages);
  return settled.map((s) => (s.status === 'fulfilled' ? s.value : s.reason instanceof Error ? s.reason : new Error(String(s.reason))));
}

builder.queryFields((t) => ({
  runStep: t.field({
    type: RunStepRef,
    nullable: true,
    args: {
      threadId: t.arg.id({ required: true }),
      runId: t.arg.id({ required: true }),
      stepId: t.arg.id({ required: true }),
    },
    resolve: (_, a, ctx) => ctx.runs.getStep(ctx.projectId, String(a.threadId), String(a.runId), String(a.stepId)),
  }),
}));

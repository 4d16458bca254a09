/**
 * The live content of runs: the RunEvent interface (status changes, message and step
 * events, text deltas) and the two subscriptions that deliver it, runEvents and
 * threadEvents (see realtime/content-streams.ts for the order and resumption rules).
 */
import type { MessageRow, RunStepRow } from '../../db/schema.js';
import type { MessageEvent, StepEvent } from '../../domain/run-events.js';
import { runContentStream, threadContentStream, type ContentDelivery } from '../../realtime/content-streams.js';
import type { Lagged } from '../../realtime/run-streams.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { MessageRef } from './message.js';
import { RunStepRef } from './run-step.js';
import { RunEventRef, RUN_EVENT_FIELDS, type DeltaDelivery } from './run-event.js';

export type MessageDelivery = { event: MessageEvent; message?: MessageRow | undefined };
type StepDelivery = { event: StepEvent };

/**
 * The scalar fields of MessageEvent and MessageDeltaEvent, each a function of the
 * delivery alone: the resolvers below and the websocket's direct delivery
 * (graphql/event-projection.ts) both read them here.
 */
export const MESSAGE_EVENT_FIELDS = {
  ...RUN_EVENT_FIELDS,
  kind: (p: MessageDelivery) => p.event.change,
} as const;
export const MESSAGE_DELTA_FIELDS = {
  ...RUN_EVENT_FIELDS,
  messageId: (p: DeltaDelivery) => p.delta.messageId,
  index: (p: DeltaDelivery) => p.delta.index,
  text: (p: DeltaDelivery) => p.delta.text,
} as const;

const MessageEventKind = builder.enumType('MessageEventKind', {
  values: { CREATED: { value: 'created' }, COMPLETED: { value: 'completed' }, INCOMPLETE: { value: 'incomplete' } } as const,
});

builder.objectRef<MessageDelivery>('MessageEvent').implement({
  description:
    'A message of the run created (IN_PROGRESS, no text yet: the text follows as MessageDeltaEvents), completed or left incomplete.',
  interfaces: [RunEventRef],
  fields: (t) => ({
    kind: t.field({ type: MessageEventKind, resolve: MESSAGE_EVENT_FIELDS.kind }),
    message: t.field({
      type: MessageRef,
      description: 'The message as this event left it (CREATED: empty and IN_PROGRESS).',
      resolve: async (p, _, ctx) => messageAsOf(p, ctx),
    }),
  }),
});

builder.objectRef<DeltaDelivery>('MessageDeltaEvent').implement({
  description:
    "Text added to the message being written: `text` goes at `index` (in UTF-16 code units, JavaScript's string indexes) of the message's text. The deltas of a message, put at their indexes, make its final text exactly.",
  interfaces: [RunEventRef],
  fields: (t) => ({
    messageId: t.id({ resolve: MESSAGE_DELTA_FIELDS.messageId }),
    index: t.int({ resolve: MESSAGE_DELTA_FIELDS.index }),
    text: t.string({ resolve: MESSAGE_DELTA_FIELDS.text }),
  }),
});

builder.objectRef<StepDelivery>('RunStepEvent').implement({
  description: 'A step of the run changed status (IN_PROGRESS: it was created).',
  interfaces: [RunEventRef],
  fields: (t) => ({
    step: t.field({
      type: RunStepRef,
      description: 'The step, with the status this event gave it.',
      resolve: async (p, _, ctx) => stepAsOf(p, ctx),
    }),
  }),
});

async function messageAsOf(p: MessageDelivery, ctx: GraphQLContext): Promise<MessageRow> {
  const message = p.message ?? (await ctx.history.message(p.event.messageId));
  if (!message) throw new Error(`message ${p.event.messageId} vanished`);
  return p.event.change === 'created' ? { ...message, content: '', status: 'in_progress' } : message;
}

async function stepAsOf(p: StepDelivery, ctx: GraphQLContext): Promise<RunStepRow> {
  // A step's row shows at least the status its event gave it (a shared read may predate it).
  const ended = p.event.status !== 'in_progress';
  const step = await ctx.history.step(p.event.stepId, (row) => !ended || row.status !== 'in_progress');
  if (!step) throw new Error(`step ${p.event.stepId} vanished`);
  return { ...step, status: p.event.status };
}

/** A lagging stream's last delivery becomes its SUBSCRIPTION_LAGGED error. */
function contentOrLagged(p: ContentDelivery | Lagged): ContentDelivery {
  if ('lagged' in p) throw p.lagged;
  return p;
}

builder.subscriptionFields((t) => ({
  runEvents: t.field({
    type: RunEventRef,
    description:
      "Everything that happens to the run, in order. Without after: its current state (a RunStatusEvent), the text of the message being written so far (one MessageDeltaEvent from index 0), then live. With after (any event's cursor): every event after it (from history), the rest of the message being written, then live; never a gap, never a character twice. Completes after the run's terminal status.",
    args: { threadId: t.arg.id({ required: true }), runId: t.arg.id({ required: true }), after: t.arg.string() },
    subscribe: (_, { threadId, runId, after }, ctx) => runContentStream(ctx, String(threadId), String(runId), after),
    resolve: contentOrLagged,
  }),
  threadEvents: t.field({
    type: RunEventRef,
    description:
      "runEvents for every run of the thread, in the thread's order. Without after: the latest run's current state and the text being written, then live.",
    args: { threadId: t.arg.id({ required: true }), after: t.arg.string() },
    subscribe: (_, { threadId, after }, ctx) => threadContentStream(ctx, String(threadId), after),
    resolve: contentOrLagged,
  }),
}));

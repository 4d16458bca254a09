/** RunStatusEvent and the two subscriptions that deliver it. */
import { runStatusStream, threadRunsStream, encodeEventCursor, type Delivery } from '../../realtime/run-streams.js';
import type { RunStatusEvent } from '../../domain/run.js';
import { builder } from '../builder.js';
import { RunRef, RunStatusEnum } from './run.js';
import { RunEventRef } from './run-event.js';

type EventDelivery = Extract<Delivery, { event: unknown }>;

/**
 * RunStatusEvent's scalar fields, each a function of the event alone: the resolvers below
 * and the websocket's direct delivery (graphql/event-projection.ts) both read them here.
 */
export const EVENT_FIELDS = {
  runId: (e: RunStatusEvent) => e.runId,
  threadId: (e: RunStatusEvent) => e.threadId,
  version: (e: RunStatusEvent) => e.version,
  cursor: (e: RunStatusEvent) => encodeEventCursor(e),
  previousStatus: (e: RunStatusEvent) => e.previousStatus,
  status: (e: RunStatusEvent) => e.status,
  at: (e: RunStatusEvent) => e.at,
} as const;

export const RunStatusEventRef = builder.objectRef<EventDelivery>('RunStatusEvent').implement({
  description: 'One status change of a run (or, first in runStatusChanged without afterVersion, its current state).',
  interfaces: [RunEventRef],
  fields: (t) => ({
    runId: t.id({ resolve: (p) => EVENT_FIELDS.runId(p.event) }),
    threadId: t.id({ resolve: (p) => EVENT_FIELDS.threadId(p.event) }),
    version: t.int({
      description: "The run's version after this change: resume a run with afterVersion.",
      resolve: (p) => EVENT_FIELDS.version(p.event),
    }),
    cursor: t.string({
      description: "This event's place in its thread's history: resume threadRunsChanged with after.",
      resolve: (p) => EVENT_FIELDS.cursor(p.event),
    }),
    previousStatus: t.field({ type: RunStatusEnum, nullable: true, resolve: (p) => EVENT_FIELDS.previousStatus(p.event) }),
    status: t.field({ type: RunStatusEnum, resolve: (p) => EVENT_FIELDS.status(p.event) }),
    at: t.int({ description: 'Unix seconds of the change.', resolve: (p) => EVENT_FIELDS.at(p.event) }),
    run: t.field({
      type: RunRef,
      description:
        'The run as this change left it when the server has that state at hand (the first event of runStatusChanged); otherwise the run as it is when the event is delivered, which may be later.',
      resolve: async (p, _, ctx) => {
        if (p.run && p.run.version === p.event.version) return p.run;
        const run = await ctx.history.runForEvent(p.event.runId, p.event.version);
        if (!run) throw new Error(`run ${p.event.runId} vanished`);
        return run;
      },
    }),
  }),
});

/** A lagging stream's last delivery becomes its SUBSCRIPTION_LAGGED error. */
function eventOrLagged(p: Delivery): EventDelivery {
  if ('lagged' in p) throw p.lagged;
  return p;
}

builder.subscriptionFields((t) => ({
  runStatusChanged: t.field({
    type: RunStatusEventRef,
    description:
      "Without afterVersion: the run's current state, then every status change in order. With it: every change after that version (from history), then live. Completes after a terminal status.",
    args: {
      runId: t.arg.id({ required: true }),
      afterVersion: t.arg.int({ validate: { min: [0, { message: 'must be at least 0' }] } }),
    },
    subscribe: (_, { runId, afterVersion }, ctx) => runStatusStream(ctx, String(runId), afterVersion),
    resolve: eventOrLagged,
  }),
  threadRunsChanged: t.field({
    type: RunStatusEventRef,
    description: 'Every status change of every run of the thread, in order: from now on, or after the event whose cursor is given.',
    args: { threadId: t.arg.id({ required: true }), after: t.arg.string() },
    subscribe: (_, { threadId, after }, ctx) => threadRunsStream(ctx, String(threadId), after),
    resolve: eventOrLagged,
  }),
}));

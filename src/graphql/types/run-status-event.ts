/** RunStatusEvent and the two subscriptions that deliver it. */
import { runStatusStream, threadRunsStream, encodeEventCursor, type Delivery } from '../../realtime/run-streams.js';
import { builder } from '../builder.js';
import { RunRef, RunStatusEnum } from './run.js';

type EventDelivery = Extract<Delivery, { event: unknown }>;

const RunStatusEventRef = builder.objectRef<EventDelivery>('RunStatusEvent').implement({
  description: 'One status change of a run (or, first in runStatusChanged without afterVersion, its current state).',
  fields: (t) => ({
    runId: t.id({ resolve: (p) => p.event.runId }),
    threadId: t.id({ resolve: (p) => p.event.threadId }),
    version: t.int({ description: "The run's version after this change: resume a run with afterVersion.", resolve: (p) => p.event.version }),
    cursor: t.string({
      description: "This event's place in its thread's history: resume threadRunsChanged with after.",
      resolve: (p) => encodeEventCursor(p.event),
    }),
    previousStatus: t.field({ type: RunStatusEnum, nullable: true, resolve: (p) => p.event.previousStatus }),
    status: t.field({ type: RunStatusEnum, resolve: (p) => p.event.status }),
    at: t.int({ description: 'Unix seconds of the change.', resolve: (p) => p.event.at }),
    run: t.field({
      type: RunRef,
      description:
        'The run as this change left it when the server has that state at hand (the first event of runStatusChanged); otherwise the run as it is when the event is delivered, which may be later.',
      resolve: async (p, _, ctx) => {
        if (p.run && p.run.version === p.event.version) return p.run;
        const run = await ctx.runs.runForEvent(p.event.runId, p.event.version);
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
    description:
      'Every status change of every run of the thread, in order: from now on, or after the event whose cursor is given.',
    args: { threadId: t.arg.id({ required: true }), after: t.arg.string() },
    subscribe: (_, { threadId, after }, ctx) => threadRunsStream(ctx, String(threadId), after),
    resolve: eventOrLagged,
  }),
}));

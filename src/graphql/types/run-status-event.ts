/** RunStatusEvent and the two subscriptions that deliver it. */
import type { PublishedEvent } from '../../realtime/event-bus.js';
import { runStatusStream, threadRunsStream } from '../../realtime/run-streams.js';
import { builder } from '../builder.js';
import { RunRef, RunStatusEnum } from './run.js';

const RunStatusEventRef = builder.objectRef<PublishedEvent>('RunStatusEvent').implement({
  description: 'One status change of a run (or, first in runStatusChanged, its current state).',
  fields: (t) => ({
    runId: t.id({ resolve: (p) => p.event.runId }),
    threadId: t.id({ resolve: (p) => p.event.threadId }),
    version: t.int({ resolve: (p) => p.event.version }),
    previousStatus: t.field({ type: RunStatusEnum, nullable: true, resolve: (p) => p.event.previousStatus }),
    status: t.field({ type: RunStatusEnum, resolve: (p) => p.event.status }),
    at: t.int({ description: 'Unix seconds of the change.', resolve: (p) => p.event.at }),
    run: t.field({
      type: RunRef,
      description:
        'The run as this transition left it when the server has that snapshot; otherwise (an event replayed from history) the run as it is now.',
      resolve: async (p, _, ctx) => {
        if (p.run && p.run.version === p.event.version) return p.run;
        const run = await ctx.runs.getById(p.event.runId);
        if (!run) throw new Error(`run ${p.event.runId} vanished`);
        return run;
      },
    }),
  }),
});

builder.subscriptionFields((t) => ({
  runStatusChanged: t.field({
    type: RunStatusEventRef,
    description:
      "The run's current state first, then every status change in order; completes after a terminal status.",
    args: { runId: t.arg.id({ required: true }) },
    subscribe: (_, { runId }, ctx) => runStatusStream(ctx, String(runId)),
    resolve: (p) => p,
  }),
  threadRunsChanged: t.field({
    type: RunStatusEventRef,
    description: 'Every status change of every run of the thread, from the moment of subscribing.',
    args: { threadId: t.arg.id({ required: true }) },
    subscribe: (_, { threadId }, ctx) => threadRunsStream(ctx, String(threadId)),
    resolve: (p) => p,
  }),
}));

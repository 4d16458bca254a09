/** RunStatusEvent and the two subscriptions that deliver it. */
import { runStatusStream, threadRunsStream, encodeEventCursor, type Delivery } from '../../realtime/run-streams.js';
import { Kind, type FieldNode } from 'graphql';
import type { RunRow } from '../../db/schema.js';
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
    at: t.field({
      type: 'UnixTime',
      description: 'Unix seconds of the change.',
      resolve: (p) => EVENT_FIELDS.at(p.event),
    }),
    run: t.field({
      type: RunRef,
      description:
        "The run as this change left it (its version is the event's). Selecting only id, threadId, status and version of it costs no read.",
      resolve: async (p, _, ctx, info) => {
        if (p.run && p.run.version === p.event.version) return p.run;
        if (fromEventAlone(info.fieldNodes)) return runOfEvent(p.event);
        const run = await ctx.history.runForEvent(p.event.runId, p.event.version);
        if (!run) throw new Error(`run ${p.event.runId} vanished`);
        return run;
      },
    }),
  }),
});

/** The Run fields an event carries: a selection of only these is served from the event. */
export const RUN_FIELDS_OF_EVENT = new Set(['__typename', 'object', 'id', 'threadId', 'status', 'version']);

const aloneByNodes = new WeakMap<readonly FieldNode[], boolean>();

/** Whether the `run` selection asks only for what the event carries (plain fields, no fragments or directives). */
function fromEventAlone(nodes: readonly FieldNode[]): boolean {
  let alone = aloneByNodes.get(nodes);
  if (alone === undefined) {
    alone = nodes.every((node) =>
      (node.selectionSet?.selections ?? []).every(
        (s) => s.kind === Kind.FIELD && !s.directives?.length && !s.selectionSet && RUN_FIELDS_OF_EVENT.has(s.name.value),
      ),
    );
    aloneByNodes.set(nodes, alone);
  }
  return alone;
}

/**
 * The run as the event tells it: the fields of RUN_FIELDS_OF_EVENT only, for a selection
 * of no others (the rest of a RunRow is never read).
 */
export function runOfEvent(e: RunStatusEvent): RunRow {
  return { id: e.runId, threadId: e.threadId, status: e.status, version: e.version } as RunRow;
}

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

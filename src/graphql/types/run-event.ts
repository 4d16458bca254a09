/**
 * The RunEvent interface: what every event of the live run streams has (a cursor to
 * resume from, the run, the thread, a time). Its implementations are RunStatusEvent
 * (run-status-event.ts) and the content events of run-events.ts.
 */
import type { ItemEvent } from '../../domain/run-events.js';
import { encodeContentCursor, type ContentDelivery, type DeliveredDelta } from '../../realtime/content-streams.js';
import { builder } from '../builder.js';

export type DeltaDelivery = { delta: DeliveredDelta };

export const isDelta = (p: ContentDelivery): p is DeltaDelivery => 'delta' in p;
export const itemOf = (p: ContentDelivery): ItemEvent | undefined => ('event' in p && 'kind' in p.event ? p.event : undefined);

export type RunEventTypeName = 'RunStatusEvent' | 'MessageEvent' | 'MessageDeltaEvent' | 'RunStepEvent';

/** The RunEvent implementation a delivery is: what resolveType answers, and which projection writes it. */
export function eventTypeOf(p: ContentDelivery): RunEventTypeName {
  if (isDelta(p)) return 'MessageDeltaEvent';
  const item = itemOf(p);
  if (!item) return 'RunStatusEvent';
  return item.kind === 'message' ? 'MessageEvent' : 'RunStepEvent';
}

/**
 * The interface's fields, each a function of the delivery alone: the resolvers below
 * (RunStatusEvent has its own) and the websocket's direct delivery
 * (graphql/event-projection.ts) both read them here.
 */
export const RUN_EVENT_FIELDS = {
  cursor: (p: ContentDelivery) =>
    isDelta(p) ? p.delta.cursor : 'kind' in p.event ? encodeContentCursor(p.event) : encodeContentCursor({ ...p.event, sub: 0 }),
  runId: (p: ContentDelivery) => (isDelta(p) ? p.delta.runId : p.event.runId),
  threadId: (p: ContentDelivery) => (isDelta(p) ? p.delta.threadId : p.event.threadId),
  at: (p: ContentDelivery) => (isDelta(p) ? p.delta.at : p.event.at),
} as const;

export const RunEventRef = builder.interfaceRef<ContentDelivery>('RunEvent').implement({
  description:
    'Something that happened to a run: a status change, a message created or ended, a step status change, or text added to the message being written.',
  fields: (t) => ({
    cursor: t.string({
      description: 'Where this event stands: resume runEvents or threadEvents with after, mid-message too.',
      resolve: RUN_EVENT_FIELDS.cursor,
    }),
    runId: t.id({ resolve: RUN_EVENT_FIELDS.runId }),
    threadId: t.id({ resolve: RUN_EVENT_FIELDS.threadId }),
    at: t.field({
      type: 'UnixTime',
      description: 'Unix seconds of the event (of a delta: when it was delivered).',
      resolve: RUN_EVENT_FIELDS.at,
    }),
  }),
  resolveType: eventTypeOf,
});

/**
 * Fan-out of committed transitions to this process's subscribers. The transport feeds it
 * every event announced by any process. A subscription registers the moment it is
 * created (not on first read), so a caller can subscribe, then read the database, and
 * miss nothing in between.
 */
import { hot } from '../observability/metrics.js';
import { DEFAULTS } from '../config.js';
import { SubscriptionLaggedError } from '../domain/errors.js';
import type { RunStatusEvent } from '../domain/run.js';
import { isStatusEvent, type LiveEvent } from '../domain/run-events.js';
import { BoundedQueue } from './bounded-queue.js';

/** An event, or word that events may have been lost (the transport reconnected). */
export type BusItem<E = RunStatusEvent> = { kind: 'event'; event: E } | { kind: 'resync' };

/** A run's or a thread's status changes. */
export type StatusTopic = `run:${string}` | `thread:${string}`;
/** Everything of a run or a thread: status changes, item events and text deltas. */
export type ContentTopic = `run-content:${string}` | `thread-content:${string}`;
export type Topic = StatusTopic | ContentTopic;

export interface RunEventBus {
  /** Events a subscription may have waiting before it is cut off as lagging. */
  readonly capacity: number;
  publish(events: readonly LiveEvent[]): void;
  subscribe(topic: StatusTopic): BoundedQueue<BusItem>;
  subscribe(topic: ContentTopic): BoundedQueue<BusItem<LiveEvent>>;
  /** Tells every subscription to catch up from the database. */
  resyncAll(): void;
  /** How many subscriptions listen on the topic now (on every topic, without one). */
  subscriberCount(topic?: Topic): number;
  /** Events published and not yet read, over every subscription (shutdown waits for 0). */
  buffered(): number;
}

/** @param capacity events buffered per subscription before it is cut off as lagging (SUBSCRIPTION_BUFFER). */
export function createInProcessEventBus(capacity = DEFAULTS.subscriptionBuffer): RunEventBus {
  const subscribers = new Map<Topic, Set<BoundedQueue<BusItem<LiveEvent>>>>();
  const each = (fn: (q: BoundedQueue<BusItem<LiveEvent>>) => void) => {
    for (const set of subscribers.values()) for (const q of set) fn(q);
  };
  return {
    capacity,
    publish(events) {
      const to = (topic: Topic, item: BusItem<LiveEvent>) => {
        const set = subscribers.get(topic);
        if (!set) return;
        for (const q of set) q.push(item);
        hot.eventsDelivered += set.size;
      };
      for (const event of events) {
        const item: BusItem<LiveEvent> = { kind: 'event', event };
        if (isStatusEvent(event)) {
          to(`run:${event.runId}`, item);
          to(`thread:${event.threadId}`, item);
        }
        to(`run-content:${event.runId}`, item);
        to(`thread-content:${event.threadId}`, item);
      }
    },
    resyncAll() {
      each((q) => q.push({ kind: 'resync' }));
    },
    subscriberCount(topic) {
      if (topic) return subscribers.get(topic)?.size ?? 0;
      let total = 0;
      for (const set of subscribers.values()) total += set.size;
      return total;
    },
    buffered() {
      let total = 0;
      each((q) => (total += q.buffered));
      return total;
    },
    subscribe(topic: Topic) {
      let set = subscribers.get(topic);
      if (!set) subscribers.set(topic, (set = new Set()));
      const queue = new TopicQueue(capacity, subscribers, topic, set);
      set.add(queue);
      // A status topic's queue only ever receives status events.
      return queue as BoundedQueue<BusItem> & BoundedQueue<BusItem<LiveEvent>>;
    },
  };
}

const lagging = () => {
  hot.subscriptionsLagged++;
  return new SubscriptionLaggedError();
};

/** A subscription's queue, which leaves its topic when it closes (a class: no closures per subscription). */
class TopicQueue extends BoundedQueue<BusItem<LiveEvent>> {
  constructor(
    capacity: number,
    private readonly topics: Map<Topic, Set<BoundedQueue<BusItem<LiveEvent>>>>,
    private readonly topic: Topic,
    private readonly set: Set<BoundedQueue<BusItem<LiveEvent>>>,
  ) {
    super(capacity, lagging);
  }

  protected override onClose(): void {
    this.set.delete(this);
    if (this.set.size === 0 && this.topics.get(this.topic) === this.set) this.topics.delete(this.topic);
  }
}

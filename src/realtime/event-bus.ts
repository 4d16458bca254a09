/**
 * Fan-out of committed transitions to this process's subscribers. The transport feeds it
 * every event announced by any process. A subscription registers the moment it is
 * created (not on first read), so a caller can subscribe, then read the database, and
 * miss nothing in between.
 */
import { DEFAULTS } from '../config.js';
import { SubscriptionLaggedError } from '../domain/errors.js';
import type { RunStatusEvent } from '../domain/run.js';
import { BoundedQueue } from './bounded-queue.js';

/** An event, or word that events may have been lost (the transport reconnected). */
export type BusItem = { kind: 'event'; event: RunStatusEvent } | { kind: 'resync' };

export type Topic = `run:${string}` | `thread:${string}`;

export interface RunEventBus {
  /** Events a subscription may have waiting before it is cut off as lagging. */
  readonly capacity: number;
  publish(events: readonly RunStatusEvent[]): void;
  subscribe(topic: Topic): BoundedQueue<BusItem>;
  /** Tells every subscription to catch up from the database. */
  resyncAll(): void;
  /** How many subscriptions listen on the topic now (on every topic, without one). */
  subscriberCount(topic?: Topic): number;
  /** Events published and not yet read, over every subscription (shutdown waits for 0). */
  buffered(): number;
}

/** @param capacity events buffered per subscription before it is cut off as lagging (SUBSCRIPTION_BUFFER). */
export function createInProcessEventBus(capacity = DEFAULTS.subscriptionBuffer): RunEventBus {
  const subscribers = new Map<Topic, Set<BoundedQueue<BusItem>>>();
  const each = (fn: (q: BoundedQueue<BusItem>) => void) => {
    for (const set of subscribers.values()) for (const q of set) fn(q);
  };
  return {
    capacity,
    publish(events) {
      for (const event of events) {
        const item: BusItem = { kind: 'event', event };
        for (const topic of [`run:${event.runId}`, `thread:${event.threadId}`] as const) {
          const set = subscribers.get(topic);
          if (set) for (const q of set) q.push(item);
        }
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
    subscribe(topic) {
      let set = subscribers.get(topic);
      if (!set) subscribers.set(topic, (set = new Set()));
      const queue = new TopicQueue(capacity, subscribers, topic, set);
      set.add(queue);
      return queue;
    },
  };
}

const lagging = () => new SubscriptionLaggedError();

/** A subscription's queue, which leaves its topic when it closes (a class: no closures per subscription). */
class TopicQueue extends BoundedQueue<BusItem> {
  constructor(
    capacity: number,
    private readonly topics: Map<Topic, Set<BoundedQueue<BusItem>>>,
    private readonly topic: Topic,
    private readonly set: Set<BoundedQueue<BusItem>>,
  ) {
    super(capacity, lagging);
  }

  protected override onClose(): void {
    this.set.delete(this);
    if (this.set.size === 0 && this.topics.get(this.topic) === this.set) this.topics.delete(this.topic);
  }
}

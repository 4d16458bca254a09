/**
 * Fan-out of committed run transitions to this process's subscribers. Publishers call
 * {@link RunEventBus.publish} after their transaction commits. A subscription registers
 * the moment it is created (not on first read), so a caller can subscribe, then read the
 * current state, and miss nothing in between.
 */
import type { RunRow } from '../db/schema.js';
import type { RunStatusEvent } from '../domain/run.js';
import { BoundedQueue } from './bounded-queue.js';

export interface PublishedEvent {
  event: RunStatusEvent;
  /** The run as the transition left it, when the publisher has it. */
  run?: RunRow;
}

export type Topic = `run:${string}` | `thread:${string}`;

export class SubscriptionLaggedError extends Error {
  constructor() {
    super('The subscriber fell too far behind.');
  }
}

export interface RunEventBus {
  publish(events: readonly PublishedEvent[]): void;
  subscribe(topic: Topic): BoundedQueue<PublishedEvent>;
  /** How many subscriptions listen on the topic now (on every topic, without one). */
  subscriberCount(topic?: Topic): number;
  /** Shutdown: every subscription ends after delivering what it has buffered. */
  endAll(): void;
}

/** @default capacity 1000 events buffered per subscription */
export function createInProcessEventBus(capacity = 1000): RunEventBus {
  const subscribers = new Map<Topic, Set<BoundedQueue<PublishedEvent>>>();
  return {
    publish(events) {
      for (const published of events) {
        for (const topic of [`run:${published.event.runId}`, `thread:${published.event.threadId}`] as const) {
          const set = subscribers.get(topic);
          if (set) for (const q of set) q.push(published);
        }
      }
    },
    subscriberCount(topic) {
      if (topic) return subscribers.get(topic)?.size ?? 0;
      let total = 0;
      for (const set of subscribers.values()) total += set.size;
      return total;
    },
    endAll() {
      for (const set of subscribers.values()) for (const q of set) q.end();
    },
    subscribe(topic) {
      let set = subscribers.get(topic);
      if (!set) subscribers.set(topic, (set = new Set()));
      const queue: BoundedQueue<PublishedEvent> = new BoundedQueue(
        capacity,
        () => new SubscriptionLaggedError(),
        () => {
          set.delete(queue);
          if (set.size === 0) subscribers.delete(topic);
        },
      );
      set.add(queue);
      return queue;
    },
  };
}

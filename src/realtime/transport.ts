/**
 * How committed transitions reach every Runway process (gateways for their subscribers,
 * workers for wake-ups and cancels). PostgreSQL LISTEN/NOTIFY by default: the NOTIFY is
 * part of the transaction that made the change, so a committed change is always
 * announced and an aborted one never is. One NOTIFY per transaction, however many events.
 */
import { randomUUID } from 'node:crypto';
import type { Database, Executor } from '../db/client.js';
import { listen, notify } from '../db/notifications.js';
import type { RunStatusEvent } from '../domain/run.js';
import { decodeEvents, encodeEvents, MAX_PAYLOAD_BYTES } from './event-codec.js';

export const EVENTS_CHANNEL = 'runway_events';

export interface EventTransport {
  /** Announces the transaction's events when it commits. Call once per transaction. */
  inTransaction(ex: Executor, events: readonly RunStatusEvent[]): Promise<void>;
  /**
   * Delivers every announced event, from any process, to `onEvents`. `onResync` runs when
   * delivery (re)starts, including after a lost connection: whatever was announced
   * meanwhile is gone, so listeners catch up from `run_events`.
   */
  subscribe(onEvents: (events: RunStatusEvent[]) => void, onResync: () => void): Promise<() => Promise<void>>;
  /**
   * Resolves once every event announced before the call has been delivered here (or
   * after `timeoutMs`): shutdown uses it so that subscribers see the last transitions.
   */
  flush(timeoutMs?: number): Promise<void>;
}

const BARRIER = '#barrier ';

export function postgresTransport(database: Database): EventTransport {
  const barriers = new Map<string, () => void>();
  return {
    async inTransaction(ex, events) {
      if (events.length === 0) return;
      const payload = encodeEvents(events);
      if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
        // Callers batch at most a few dozen events; this is a bug, not a runtime condition.
        throw new Error(`event payload of ${events.length} events exceeds ${MAX_PAYLOAD_BYTES} bytes`);
      }
      await notify(ex, EVENTS_CHANNEL, payload);
    },
    subscribe(onEvents, onResync) {
      return listen(
        database,
        EVENTS_CHANNEL,
        (payload) => {
          if (payload.startsWith(BARRIER)) return barriers.get(payload.slice(BARRIER.length))?.();
          onEvents(decodeEvents(payload));
        },
        onResync,
      );
    },
    async flush(timeoutMs = 2000) {
      // Notifications reach a listener in commit order: once our own barrier arrives,
      // everything committed before it has arrived too.
      const id = randomUUID();
      let timer: NodeJS.Timeout | undefined;
      const arrived = new Promise<void>((resolve) => {
        barriers.set(id, resolve);
        timer = setTimeout(resolve, timeoutMs);
      });
      await notify(database.db, EVENTS_CHANNEL, BARRIER + id);
      await arrived;
      clearTimeout(timer);
      barriers.delete(id);
    },
  };
}

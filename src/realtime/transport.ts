/**
 * How committed transitions reach every Runway process (gateways for their subscribers,
 * workers for wake-ups and cancels). PostgreSQL LISTEN/NOTIFY by default: the NOTIFY is
 * part of the transaction that made the change, so a committed change is always
 * announced and an aborted one never is. One NOTIFY per transaction, however many events.
 */
import { randomUUID } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import { Redis } from 'ioredis';
import type { Database, Executor } from '../db/client.js';
import { listen, notify } from '../db/notifications.js';
import type { RunStatusEvent } from '../domain/run.js';
import type { Logger } from '../log.js';
import { decodeEvents, encodeEvents, MAX_PAYLOAD_BYTES } from './event-codec.js';

export const EVENTS_CHANNEL = 'runway_events';

export interface EventTransport {
  /** Announces the transaction's events when it commits. Call once per transaction. */
  inTransaction(ex: Executor, events: readonly RunStatusEvent[]): Promise<void>;
  /** Called once the transaction has committed, with the same events. */
  afterCommit(events: readonly RunStatusEvent[]): void;
  /**
   * For a single statement that writes its own event rows: an expression that announces
   * the payload of their lines (see eventLinesSql) as the statement commits, or undefined
   * when this transport announces after the commit instead (afterCommit is called either
   * way).
   */
  readonly announceInStatement?: (line: SQL) => SQL;
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

/**
 * Markers sent down the channel behind everything sent before them: when this process
 * hears its own marker, it has heard everything before it.
 */
function createBarriers() {
  const waiting = new Map<string, () => void>();
  return {
    /** True (and the waiter released) when `payload` is one of our markers. */
    arrived(payload: string): boolean {
      if (!payload.startsWith(BARRIER)) return false;
      waiting.get(payload.slice(BARRIER.length))?.();
      return true;
    },
    async pass(send: (payload: string) => Promise<unknown>, timeoutMs: number): Promise<void> {
      const id = randomUUID();
      let timer: NodeJS.Timeout | undefined;
      const arrived = new Promise<void>((resolve) => {
        waiting.set(id, resolve);
        timer = setTimeout(resolve, timeoutMs);
      });
      await send(BARRIER + id);
      await arrived;
      clearTimeout(timer);
      waiting.delete(id);
    },
  };
}

export function postgresTransport(database: Database): EventTransport {
  const barriers = createBarriers();
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
    afterCommit() {},
    announceInStatement: (line) => sql`pg_notify(${EVENTS_CHANNEL}, ${line})`,
    subscribe(onEvents, onResync) {
      return listen(
        database,
        EVENTS_CHANNEL,
        (payload) => {
          if (!barriers.arrived(payload)) onEvents(decodeEvents(payload));
        },
        onResync,
      );
    },
    // Notifications reach a listener in commit order: once our own barrier arrives,
    // everything committed before it has arrived too.
    flush: (timeoutMs = 2000) => barriers.pass((payload) => notify(database.db, EVENTS_CHANNEL, payload), timeoutMs),
  };
}

/**
 * Fan-out through Redis pub/sub (REDIS_URL), for deployments with many gateways: commits
 * no longer NOTIFY, so the PostgreSQL commit lock stays out of the event path, and one
 * Redis channel carries the events to every process.
 *
 * The trade-off: a PUBLISH follows the commit instead of being part of it, so a process
 * that dies between the two loses that announcement. Subscribers then see the change at
 * the run's next event, when they fill the gap from run_events (a final transition lost
 * this way is caught at the next resync).
 */
export function redisTransport(url: string, channel: string, log: Logger): EventTransport {
  const publisher = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 3 });
  publisher.on('error', () => {}); // ioredis reconnects by itself; commands report their own errors
  const barriers = createBarriers();
  const publish = (payload: string) =>
    publisher.publish(channel, payload).catch((error: unknown) => {
      log.error({ err: error }, 'publishing run events to Redis failed');
    });
  return {
    async inTransaction() {},
    afterCommit(events) {
      if (events.length > 0) void publish(encodeEvents(events));
    },
    async subscribe(onEvents, onResync) {
      // We subscribe ourselves on every (re)connection, and catch up only once Redis has
      // confirmed it: an event published between the two is then in history or heard.
      const subscriber = new Redis(url, { lazyConnect: true, autoResubscribe: false });
      subscriber.on('error', () => {});
      subscriber.on('message', (_channel: string, payload: string) => {
        if (!barriers.arrived(payload)) onEvents(decodeEvents(payload));
      });
      let first = true;
      subscriber.on('ready', () => {
        if (first) return; // the first subscription is made below
        subscriber.subscribe(channel).then(onResync, (error: unknown) => log.error({ err: error }, 're-subscribing to Redis failed'));
      });
      await subscriber.connect();
      await subscriber.subscribe(channel);
      first = false;
      onResync();
      return async () => {
        subscriber.disconnect();
        publisher.disconnect();
      };
    },
    // One publisher connection: Redis delivers its messages in the order it sent them.
    flush: (timeoutMs = 2000) => barriers.pass(publish, timeoutMs),
  };
}

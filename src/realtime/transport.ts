/**
 * How committed transitions reach every Runway process (gateways for their subscribers,
 * workers for wake-ups and cancels): the run store's Announcer, and the listening side.
 *
 * PostgreSQL LISTEN/NOTIFY by default: the NOTIFY is part of the statement or transaction
 * that made the change, so a committed change is always announced and an aborted one never
 * is. One NOTIFY per transaction, however many events. With REDIS_URL, an outbox relayed
 * to Redis pub/sub (see redisTransport).
 */
import { randomUUID } from 'node:crypto';
import { asc, inArray, sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import type { Database, Db } from '../db/client.js';
import { listen, notify } from '../db/notifications.js';
import { eventOutbox } from '../db/schema.js';
import type { LiveEvent } from '../domain/run-events.js';
import type { Logger } from '../log.js';
import type { Announcer } from '../runs/announcer.js';
import { decodeEvents, deltaLine, encodeEvents, itemLineSql, MAX_PAYLOAD_BYTES, statusLineSql } from './event-codec.js';

export const EVENTS_CHANNEL = 'runway_events';

export interface EventTransport extends Announcer {
  /**
   * Delivers every announced event, from any process, to `onEvents`. `onResync` runs when
   * delivery (re)starts, including after a lost connection: whatever was announced
   * meanwhile is gone, so listeners catch up from `run_events`. Resolves with the way to
   * stop (and let go of the transport's connections).
   */
  subscribe(onEvents: (events: LiveEvent[]) => void, onResync: () => void): Promise<() => Promise<void>>;
  /**
   * Resolves once every event announced before the call has been delivered here (or
   * after `timeoutMs`): shutdown uses it so that subscribers see the last transitions.
   */
  flush(timeoutMs?: number): Promise<void>;
}

/** One announcement's payload, checked: callers batch at most a few dozen events. */
function payloadOf(events: readonly LiveEvent[]): string {
  const payload = encodeEvents(events);
  if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
    throw new Error(`event payload of ${events.length} events exceeds ${MAX_PAYLOAD_BYTES} bytes`);
  }
  return payload;
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
    statusLine: statusLineSql,
    itemLine: itemLineSql,
    deltaLine,
    // runway_notify cuts the lines into notifications under PostgreSQL's 8,000-byte limit
    // (a batch of finishes can carry more); one lock at commit however many it sends.
    inStatement: (lines) => sql`runway_notify(${EVENTS_CHANNEL}, ${lines})`,
    async inTransaction(ex, events) {
      if (events.length > 0) await notify(ex, EVENTS_CHANNEL, payloadOf(events));
    },
    committed() {},
    relayed: () => Promise.resolve(),
    // A statement of its own, not waiting for its commit record to reach the disk: it
    // stores nothing (the text's write follows), and the notification goes out at commit
    // either way. runway_notify cuts the lines into notifications under the 8,000 bytes.
    text: {
      async publish(lines) {
        await database.db.execute(
          sql`select set_config('synchronous_commit', 'off', true), runway_notify(${EVENTS_CHANNEL}, ${lines.join('\n')})`,
        );
      },
    },
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
 * A write adds its announcement to the outbox (`event_outbox`, through
 * `runway_outbox_append`) in its own transaction; once it has committed, this process's
 * relay publishes the outbox's rows and deletes them. A process that dies between the
 * commit and the PUBLISH loses nothing: every process's relay also sweeps the outbox
 * about once a second. An announcement may then be published twice (subscribers skip
 * what they have seen) or out of order (they fill the gap from run_events).
 */
export function redisTransport(url: string, channel: string, database: Database, log: Logger): EventTransport {
  const publisher = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 3 });
  publisher.on('error', () => {}); // ioredis reconnects by itself; commands report their own errors
  const barriers = createBarriers();
  const relay = new OutboxRelay(database.db, (payload) => publisher.publish(channel, payload), log);
  return {
    statusLine: statusLineSql,
    itemLine: itemLineSql,
    deltaLine,
    inStatement: (lines) => sql`runway_outbox_append(${lines})`,
    async inTransaction(ex, events) {
      if (events.length > 0) await ex.execute(sql`select runway_outbox_append(${payloadOf(events)})`);
    },
    committed: () => relay.wake(),
    relayed: () => relay.drained(),
    // Deltas go straight to Redis, not through the outbox: one lost with a dying process
    // is read from the message by whoever missed it.
    text: {
      async publish(lines) {
        await publisher
          .publish(channel, lines.join('\n'))
          .catch((error: unknown) => log.debug({ err: error }, 'publishing text to Redis failed'));
      },
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
      relay.start();
      return async () => {
        await relay.stop();
        subscriber.disconnect();
        publisher.disconnect();
      };
    },
    // What the outbox holds goes out first; then one publisher connection delivers in the
    // order it sent, so our barrier arrives after everything before it.
    async flush(timeoutMs = 2000) {
      await relay.drained();
      await barriers.pass(
        (payload) => publisher.publish(channel, payload).catch((error: unknown) => log.error({ err: error }, 'publishing to Redis failed')),
        timeoutMs,
      );
    },
  };
}

/** Rows one relay transaction publishes. */
const RELAY_BATCH = 200;
/** How often every relay sweeps the outbox for what no writer relayed (it died first). */
const SWEEP_MS = 1000;

/**
 * Publishes the outbox's announcements and deletes them, in one transaction per batch: a
 * publish that fails leaves its rows for the next pass. Rows another relay is publishing
 * are skipped (SKIP LOCKED), so every process may relay at once.
 */
export class OutboxRelay {
  private running: Promise<void> | undefined;
  private again = false;
  private sweep: NodeJS.Timeout | undefined;
  /** Passes started and ended so far: a pass that starts reads everything committed before it. */
  private started = 0;
  private ended = 0;

  constructor(
    private readonly db: Db,
    private readonly publish: (payload: string) => Promise<unknown>,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.sweep ??= setInterval(() => this.wake(), SWEEP_MS);
    this.sweep.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweep);
    this.sweep = undefined;
    await this.drained();
  }

  /** There is something to relay: a pass now, or right after the one under way. */
  wake(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    const pass = ++this.started;
    this.running = this.relay().finally(() => {
      this.ended = pass;
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  /**
   * Resolves once a pass that started after this call has ended: the next one, not the
   * last (while writes keep waking the relay, there is always another).
   */
  async drained(): Promise<void> {
    const needed = this.started + 1;
    this.wake();
    while (this.ended < needed && this.running) await this.running;
  }

  private async relay(): Promise<void> {
    try {
      for (;;) {
        const relayed = await this.db.transaction(async (tx) => {
          const rows = await tx
            .select({ id: eventOutbox.id, payload: eventOutbox.payload })
            .from(eventOutbox)
            .orderBy(asc(eventOutbox.id))
            .limit(RELAY_BATCH)
            .for('update', { skipLocked: true });
          if (rows.length === 0) return 0;
          // One connection: Redis publishes them in this order.
          await Promise.all(rows.map((row) => this.publish(row.payload)));
          await tx.delete(eventOutbox).where(
            inArray(
              eventOutbox.id,
              rows.map((row) => row.id),
            ),
          );
          return rows.length;
        });
        if (relayed < RELAY_BATCH) return;
      }
    } catch (error) {
      this.log.error({ err: error }, 'relaying run events to Redis failed; the next sweep retries');
    }
  }
}

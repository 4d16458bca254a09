/**
 * The subscription streams. Each registers with the bus before it reads the database,
 * keeps its position (a run's version; a thread's (threadSeq, version)), and fills any
 * gap from `run_events`: after a resume point, when an event arrives out of order, and
 * when the transport reconnected. So a subscriber sees every transition once, in order.
 */
import type { RunRow } from '../db/schema.js';
import { BadUserInputError, NotFoundError, SubscriptionLaggedError } from '../domain/errors.js';
import type { RunStatusEvent } from '../domain/run.js';
import { isTerminal } from '../domain/run-lifecycle.js';
import type { RunCommands, RunHistory } from '../runs/index.js';
import type { ThreadService } from '../threads/thread-service.js';
import type { BusItem, RunEventBus } from './event-bus.js';
import type { BoundedQueue } from './bounded-queue.js';

export interface StreamDeps {
  bus: RunEventBus;
  runs: Pick<RunCommands, 'getInProject'>;
  history: RunHistory;
  threads: ThreadService;
  /** The subscriber's project: another project's run or thread is NOT_FOUND. */
  projectId: string;
  /**
   * Where events go straight to the subscriber, skipping execution per event (see
   * guarded). graphql-ws.ts makes it for the operation's root field, so it takes what that
   * field's stream delivers: status events, or content deliveries.
   */
  direct?: DirectSink<unknown> | undefined;
}

/**
 * Writes a stream's items (status events, or content deliveries) straight to their
 * subscriber (the websocket, for an operation whose result it can project).
 */
export interface DirectSink<T = RunStatusEvent> {
  /**
   * Writes the item: 'sent'; 'gone' when the socket has closed; for a live item (sent as
   * the bus pushes it), 'backlogged' when it went out but the subscriber is too far behind
   * reading, so the stream ends as lagging after what was sent.
   */
  send(item: T, live: boolean): 'sent' | 'backlogged' | 'gone';
  /**
   * Whether the sink writes this item; one it does not (its selection needs more than the
   * item carries) goes to the consumer, graphql-ws, which executes and sends it like any
   * subscription's event, and the stream writes nothing more until the consumer asks for
   * the next: so every item is written after all the earlier ones. Without it: all.
   */
  writes?(item: T): boolean;
  /**
   * Something to wait on before writing a replayed event while the socket has too much
   * unsent; undefined when there is room. History is paced by the reader this way (live
   * events wait in the stream's bounded queue meanwhile), never cut off.
   */
  room(): Promise<void> | undefined;
  /** The stream that writes to this sink, once the subscription created it. */
  stream?: AsyncIterableIterator<unknown>;
}

/** Whether the sink writes the item itself (else its consumer executes it). */
export const sinkWrites = <T>(sink: DirectSink<T>, item: T): boolean => !sink.writes || sink.writes(item);

/** What a subscription yields: an event (with the run when the stream has it at hand), or the end of a lagging one. */
export type Delivery = { event: RunStatusEvent; run?: RunRow } | { lagged: SubscriptionLaggedError };

/** A position in a thread's event order, opaque to clients. */
export interface ThreadPosition {
  threadSeq: number;
  version: number;
}

const CURSOR_PREFIX = 'e1:';
const HISTORY_PAGE = 500;

export function encodeEventCursor(p: ThreadPosition): string {
  return Buffer.from(`${CURSOR_PREFIX}${p.threadSeq}:${p.version}`).toString('base64url');
}

export function decodeEventCursor(cursor: string): ThreadPosition {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const match = /^e1:(\d{1,9}):(\d{1,9})$/.exec(text);
  if (!match) throw new BadUserInputError("Argument 'after' is not a valid event cursor.", { argument: 'after' });
  return { threadSeq: Number(match[1]), version: Number(match[2]) };
}

const before = (a: ThreadPosition, b: ThreadPosition) =>
  a.threadSeq < b.threadSeq || (a.threadSeq === b.threadSeq && a.version < b.version);

/**
 * runStatusChanged. Without `afterVersion`: the run's current state first, then every
 * later transition. With it: every transition after that version (replayed from
 * history), then live. Completes after a terminal status.
 */
export async function runStatusStream(
  deps: StreamDeps,
  runId: string,
  afterVersion?: number | null,
): Promise<AsyncIterableIterator<Delivery>> {
  const live = deps.bus.subscribe(`run:${runId}`);
  let run: RunRow | undefined;
  let current: RunStatusEvent | undefined;
  try {
    if (afterVersion == null) {
      // The run and the event that left it as it is, in one statement.
      const now = await deps.history.runNow(deps.projectId, runId);
      run = now?.run;
      current = now?.event;
    } else run = await deps.runs.getInProject(deps.projectId, runId);
    if (!run) throw new NotFoundError('run', runId);
    if (afterVersion != null)
      await deps.history.assertResumable(
        { threadId: run.threadId, runId },
        { threadSeq: run.threadSeq, version: afterVersion, sub: 0 },
        true,
      );
  } catch (error) {
    live.close();
    throw error;
  }
  let position = afterVersion == null ? run.version : Math.max(0, afterVersion);
  // Resuming past the end of a finished run: nothing will ever come.
  const finished = afterVersion != null && isTerminal(run.status) && position >= run.version;

  const nextInOrder = (item: BusItem) => (item.kind === 'event' && item.event.version === position + 1 ? item.event : undefined);

  async function* stream(): AsyncGenerator<Delivery> {
    if (finished) return;
    const deliver = function* (events: RunStatusEvent[]) {
      for (const event of events) {
        if (event.version <= position) continue;
        position = event.version;
        yield { event };
      }
    };
    const history = () => patiently(() => deps.history.eventsAfter(runId, position)); // a run has few events
    const catchUp = async () => deliver(await history());

    if (current) {
      const first = { event: current, run };
      // An idle subscription may live for hours: it keeps its position, not the run row.
      current = run = undefined;
      yield first;
      if (isTerminal(first.event.status)) return;
    } else {
      for (const d of await catchUp()) {
        yield d;
        if ('event' in d && isTerminal(d.event.status)) return;
      }
    }
    for await (const item of live) {
      const next = nextInOrder(item);
      const events = next
        ? [next] // the next one, as it should be
        : item.kind === 'event' && item.event.version <= position
          ? [] // seen already (a replay overlapped the live stream)
          : await history(); // a gap, or a reconnect
      for (const d of deliver(events)) {
        yield d;
        if ('event' in d && isTerminal(d.event.status)) return;
      }
    }
  }
  const direct: Direct<Delivery, RunStatusEvent> | undefined = deps.direct && {
    sink: deps.direct,
    written: eventOf,
    take(item: BusItem) {
      const event = nextInOrder(item);
      if (event) position = event.version;
      return event;
    },
    ends: (event: RunStatusEvent) => isTerminal(event.status),
  };
  return guarded(stream(), live, () => ({ lastVersion: position }), direct);
}

/**
 * threadRunsChanged: every transition of every run of the thread, in the thread's order.
 * Without `after`, from the moment of subscribing; with a cursor (each event carries
 * one), from just after that event, replayed from history, then live.
 */
export async function threadRunsStream(
  deps: StreamDeps,
  threadId: string,
  after?: string | null,
): Promise<AsyncIterableIterator<Delivery>> {
  const resumeFrom = after != null ? decodeEventCursor(after) : undefined;
  const thread = await deps.threads.get(deps.projectId, threadId);
  if (!thread) throw new NotFoundError('thread', threadId);
  if (resumeFrom) await deps.history.assertResumable({ threadId }, { ...resumeFrom, sub: 0 }, true);
  // Without a cursor, the stream starts where the thread is when it is read, and that read
  // comes before the live subscription opens: whatever happens after it is then either in
  // history (the first catch-up below) or heard live. Read after subscribing, it could
  // already include events the queue holds, which would be skipped as seen and never sent.
  let position: ThreadPosition = resumeFrom ?? (await deps.history.lastThreadPosition(threadId));
  const live = deps.bus.subscribe(`thread:${threadId}`);

  // Whether the event at `position` ended its run: then the thread's next event can only
  // be the next run's first.
  let runEnded = false;
  const advance = (event: RunStatusEvent): Delivery => {
    position = { threadSeq: event.threadSeq, version: event.version };
    runEnded = isTerminal(event.status);
    return { event };
  };

  /** The event right after `position`: the run's next version, or the next run's first once the run ended. */
  const isNext = (e: RunStatusEvent) =>
    (e.threadSeq === position.threadSeq && e.version === position.version + 1) ||
    (runEnded && e.threadSeq === position.threadSeq + 1 && e.version === 1);

  async function* stream(): AsyncGenerator<Delivery> {
    const catchUp = async function* () {
      // Page through history until it is exhausted: a cursor may be far behind.
      for (;;) {
        const page = await patiently(() => deps.history.threadEventsAfter(threadId, position, HISTORY_PAGE));
        for (const event of page) {
          if (before(position, event)) yield advance(event);
        }
        if (page.length < HISTORY_PAGE) return;
      }
    };
    yield* catchUp();
    for await (const item of live) {
      if (item.kind === 'event') {
        const e = item.event;
        if (!before(position, e)) continue; // seen already
        if (isNext(e)) {
          yield advance(e);
          continue;
        }
      }
      // A new run whose predecessor's end has not reached us yet, a gap, or a reconnect.
      yield* catchUp();
    }
  }
  const direct: Direct<Delivery, RunStatusEvent> | undefined = deps.direct && {
    sink: deps.direct,
    written: eventOf,
    take(item: BusItem) {
      if (item.kind !== 'event' || !isNext(item.event)) return undefined;
      advance(item.event);
      return item.event;
    },
    ends: () => false,
  };
  return guarded(stream(), live, () => ({ lastCursor: encodeEventCursor(position) }), direct);
}

/**
 * Reads history through a database outage (events may keep coming from Redis meanwhile):
 * retries for about 30 s before the stream gives up. Live events wait in the bounded
 * queue; a reader that falls too far behind is cut off as usual.
 */
export async function patiently<T>(read: () => Promise<T>): Promise<T> {
  let delay = 100;
  for (let waited = 0; ; waited += delay, delay = Math.min(delay * 2, 5000)) {
    try {
      return await read();
    } catch (error) {
      if (waited >= 30_000) throw error;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** What the status streams' sinks are given of a delivery: its event. */
const eventOf = (d: Delivery): RunStatusEvent => (d as { event: RunStatusEvent }).event;

/**
 * A stream's direct delivery: the sink, what of a delivery `D` it writes (`T`), and how
 * the stream takes a live bus item (`BusItem<E>`) in order.
 */
export interface Direct<D, T, E = T> {
  sink: DirectSink<T>;
  /** What the sink is given of a delivery the generator yields. */
  written(delivery: D): T;
  /**
   * The live item as the sink's, if it is the next in order, needs nothing read, and the
   * sink writes it (`sinkWrites`): the stream's position moves past it. Else undefined,
   * and nothing moved (the generator handles the item).
   */
  take(item: BusItem<E>, sink: DirectSink<T>): T | undefined;
  /** Whether the stream ends with this item. */
  ends(item: T): boolean;
}

/**
 * What every stream needs around its generator:
 * - the bus subscription ends with the stream, however it ends;
 * - a lagging subscriber (its queue overflowed) gets one final delivery that the
 *   resolver turns into SUBSCRIPTION_LAGGED, carrying where to resume from;
 * - an unsubscribe frees the stream at once. An async generator's return() waits while
 *   the generator awaits (here: the next event, which may never come), so the queue is
 *   closed first, which ends that wait.
 * With a direct sink, the deliveries themselves go to the sink as they come, and the
 * consumer's next() settles only at the end (done, or the lagged delivery: the queue
 * overflowed, or the sink reports its subscriber backlogged) or with a delivery the sink
 * does not write, which the consumer executes and sends before it asks for the next.
 * While the generator waits for live events, an in-order one the sink writes goes to it
 * as the bus pushes it, without waking the generator (which reads the same position
 * when it next runs).
 */
export function guarded<D extends object, E = RunStatusEvent, T = never>(
  generator: AsyncGenerator<D>,
  live: BoundedQueue<BusItem<E>>,
  resumeAt: () => Record<string, unknown>,
  direct?: Direct<D, T, E>,
): AsyncIterableIterator<D | Lagged> {
  return new GuardedStream<D, E, T>(generator, live, resumeAt, direct);
}

/** A lagging stream's last delivery. */
export type Lagged = { lagged: SubscriptionLaggedError };

/** {@link guarded}'s iterator: one object per subscription, its steps methods, not closures. */
class GuardedStream<D extends object, E, T> implements AsyncIterableIterator<D | Lagged> {
  private lagged = false;
  /** Unsubscribed: nothing more may be written, even an event already read. */
  private returned = false;

  constructor(
    private readonly generator: AsyncGenerator<D>,
    private readonly live: BoundedQueue<BusItem<E>>,
    private readonly resumeAt: () => Record<string, unknown>,
    private readonly direct?: Direct<D, T, E>,
  ) {
    if (direct) {
      live.interceptor = this;
      direct.sink.stream = this;
    }
  }

  next(): Promise<IteratorResult<D | Lagged>> {
    return this.direct ? this.pump(this.direct) : this.pull();
  }

  return(value?: unknown): Promise<IteratorResult<D | Lagged>> {
    this.returned = true;
    this.live.close();
    return this.generator.return(value as D);
  }

  throw(error?: unknown): Promise<IteratorResult<D | Lagged>> {
    this.live.close();
    return this.generator.throw(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The bus's in-order live item, sent on the spot while the generator waits (direct only). */
  intercept(item: BusItem<E>): boolean {
    const direct = this.direct;
    if (!direct || this.returned) return false;
    const taken = direct.take(item, direct.sink);
    if (taken === undefined) return false;
    try {
      const outcome = direct.sink.send(taken, true);
      if (outcome === 'sent') {
        if (direct.ends(taken)) this.live.end();
      } else if (outcome === 'gone') this.live.close();
      else this.live.fail(new SubscriptionLaggedError()); // the generator's wait fails; pull() cuts it off
    } catch (error) {
      this.live.fail(error); // this subscription's failure, not the bus's: it ends with the error
    }
    return true;
  }

  private cutOff(): IteratorResult<D | Lagged> {
    this.live.close();
    this.lagged = true;
    return { value: { lagged: new SubscriptionLaggedError(this.resumeAt()) }, done: false };
  }

  private async pull(): Promise<IteratorResult<D | Lagged>> {
    if (this.lagged) return { value: undefined, done: true };
    try {
      const result = await this.generator.next();
      // A stream that ended by itself (a terminal run) is done with the bus too.
      if (result.done) this.live.close();
      return result;
    } catch (error) {
      if (!(error instanceof SubscriptionLaggedError)) {
        this.live.close();
        throw error;
      }
      return this.cutOff();
    }
  }

  /**
   * Direct delivery: sends what the generator yields (history, and live events it woke
   * for) until the stream ends, at the pace the socket drains; a delivery the sink does
   * not write is handed to the consumer instead, and sending resumes at its next next().
   */
  private async pump(direct: Direct<D, T, E>): Promise<IteratorResult<D | Lagged>> {
    for (;;) {
      const result = await this.pull();
      if (result.done || 'lagged' in result.value) return result;
      const item = direct.written(result.value);
      if (!sinkWrites(direct.sink, item)) return result;
      const room = direct.sink.room();
      if (room) await room;
      if (this.returned) return { value: undefined, done: true };
      let outcome: 'sent' | 'backlogged' | 'gone';
      try {
        outcome = direct.sink.send(item, false);
      } catch (error) {
        this.live.close();
        void this.generator.return(undefined);
        throw error;
      }
      if (outcome === 'sent') continue;
      void this.generator.return(undefined);
      this.live.close();
      return { value: undefined, done: true }; // gone: the socket closed
    }
  }
}

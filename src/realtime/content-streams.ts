/**
 * The live content of runs: runEvents (one run) and threadEvents (every run of a thread)
 * deliver status changes, message and step events, and the text of the message being
 * written as deltas, in the order they happened, resumable from any event's cursor,
 * mid-message too, on any process.
 *
 * Durable events (status and item events) have positions (threadSeq, version, sub); the
 * stream keeps the last one it delivered and fills any gap from history, as the status
 * streams do. Text has no position of its own: the stream keeps how much of the message
 * being written it has delivered, and a delta that does not continue exactly there (one
 * was missed, or it was too long to carry) is completed from the message row, once the
 * row holds its text (deltas are announced ahead of their write). Before a message's COMPLETED (or
 * INCOMPLETE) event, whatever text the subscriber has not had yet comes as a last delta,
 * so the deltas always add up to the final text.
 */
import type { MessageRow, RunRow } from '../db/schema.js';
import { BadUserInputError, NotFoundError } from '../domain/errors.js';
import type { RunStatusEvent } from '../domain/run.js';
import {
  comparePositions,
  positionOf,
  type EventPosition,
  type ItemEvent,
  type LiveEvent,
  type MessageEvent,
  type TextDelta,
} from '../domain/run-events.js';
import { isTerminal } from '../domain/run-lifecycle.js';
import type { EventScope, RunNow } from '../runs/history.js';
import { guarded, patiently, sinkWrites, type Direct, type DirectSink, type Lagged, type StreamDeps } from './run-streams.js';
import type { BusItem } from './event-bus.js';

/** Text delivered: `text` goes at `index` of the message's text. */
export interface DeliveredDelta {
  runId: string;
  threadId: string;
  messageId: string;
  index: number;
  text: string;
  /** Where a resume continues from: the last durable event delivered, and the text's end. */
  cursor: string;
  /** Unix seconds when the stream delivered it (a delta is not stored: this is its time). */
  at: number;
}

/** What runEvents and threadEvents yield. */
export type ContentDelivery =
  { event: RunStatusEvent; run?: RunRow | undefined } | { event: ItemEvent; message?: MessageRow | undefined } | { delta: DeliveredDelta };

const CURSOR = /^e2:(\d{1,9}):(\d{1,9}):(\d{1,9})(?::(\d{1,12}))?$/;
const STATUS_CURSOR = /^e1:(\d{1,9}):(\d{1,9})$/;

/** A durable event's cursor (`offset`: a delta's, with where its text ended). */
export function encodeContentCursor(p: EventPosition, offset?: number): string {
  const text = `e2:${p.threadSeq}:${p.version}:${p.sub}${offset === undefined ? '' : `:${offset}`}`;
  // A run's subscribers get the same delta one after another: the same cursor, encoded once.
  if (text !== lastCursor.text) lastCursor = { text, encoded: Buffer.from(text).toString('base64url') };
  return lastCursor.encoded;
}
let lastCursor = { text: '', encoded: '' };

/** Any event's cursor: a status event's (of either subscription family), an item event's, a delta's. */
export function decodeContentCursor(cursor: string): { position: EventPosition; offset: number | undefined } {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const status = STATUS_CURSOR.exec(text);
  if (status) return { position: { threadSeq: Number(status[1]), version: Number(status[2]), sub: 0 }, offset: undefined };
  const match = CURSOR.exec(text);
  if (!match) throw new BadUserInputError("Argument 'after' is not a valid event cursor.", { argument: 'after' });
  return {
    position: { threadSeq: Number(match[1]), version: Number(match[2]), sub: Number(match[3]) },
    offset: match[4] === undefined ? undefined : Number(match[4]),
  };
}

/** runEvents: the run's content, completing after its terminal status. */
export async function runContentStream(
  deps: StreamDeps,
  threadId: string,
  runId: string,
  after?: string | null,
): Promise<AsyncIterableIterator<ContentDelivery | Lagged>> {
  const live = deps.bus.subscribe(`run-content:${runId}`);
  try {
    const resume = after != null ? decodeContentCursor(after) : undefined;
    // Without a cursor, the run as the stream starts from it (one statement) is the check too.
    const now = resume ? undefined : await deps.history.runNow(deps.projectId, runId);
    const run = now ? now.run : resume && (await deps.runs.getInProject(deps.projectId, runId));
    if (!run || run.threadId !== threadId) throw new NotFoundError('run', runId);
    if (resume) await deps.history.assertResumable({ threadId, runId }, resume.position);
    const stream = new ContentStream(deps, { runId }, live, true);
    // Resumed from the run's terminal status (a client that lost its connection between the
    // last event and the subscription's end): nothing will ever come, it completes at once.
    const finished = resume && isTerminal(run.status) && comparePositions(resume.position, endOf(run)) >= 0;
    return guarded(finished ? nothing() : stream.run(now, resume), live, () => ({ lastCursor: stream.cursor() }), directOf(deps, stream));
  } catch (error) {
    live.close();
    throw error;
  }
}

/** Where a run's terminal status stands: its last event. */
const endOf = (run: RunRow): EventPosition => ({ threadSeq: run.threadSeq, version: run.version, sub: 0 });

async function* nothing(): AsyncGenerator<never> {}

/** threadEvents: the content of every run of the thread; never completes by itself. */
export async function threadContentStream(
  deps: StreamDeps,
  threadId: string,
  after?: string | null,
): Promise<AsyncIterableIterator<ContentDelivery | Lagged>> {
  const live = deps.bus.subscribe(`thread-content:${threadId}`);
  try {
    const resume = after != null ? decodeContentCursor(after) : undefined;
    const thread = await deps.threads.get(deps.projectId, threadId);
    if (!thread) throw new NotFoundError('thread', threadId);
    if (resume) await deps.history.assertResumable({ threadId }, resume.position);
    const latest = resume ? undefined : await deps.history.latestRun(threadId);
    const now = latest && (await deps.history.runNow(deps.projectId, latest.id));
    const stream = new ContentStream(deps, { threadId }, live, false);
    return guarded(stream.run(now, resume), live, () => ({ lastCursor: stream.cursor() }), directOf(deps, stream));
  } catch (error) {
    live.close();
    throw error;
  }
}

/**
 * A content stream's direct delivery: the sink takes the deliveries themselves, and a live
 * event that is the next in order and needs nothing read (a delta that continues the text
 * exactly, a status, a step, a message's CREATED) is written as the bus pushes it (the hot
 * path of a streamed answer); anything else wakes the generator.
 */
function directOf(deps: StreamDeps, stream: ContentStream): Direct<ContentDelivery, ContentDelivery, LiveEvent> | undefined {
  const sink: DirectSink<ContentDelivery> | undefined = deps.direct;
  return sink && { sink, written: itself, take: (item, s) => stream.take(item, s), ends: () => stream.ended };
}
const itself = (d: ContentDelivery) => d;
/** How long a reader waits for a message row to reach the text announced of it. */
const ROW_WAIT_MS = 5000;
/** A row read for a message's end must show it ended, with all its text. */
const hasEnded = (row: MessageRow) => row.status !== 'in_progress';
/** A message's COMPLETED or INCOMPLETE: delivered after its text is re-read. */
const endsMessage = (event: RunStatusEvent | ItemEvent): event is MessageEvent & { change: 'completed' | 'incomplete' } =>
  'kind' in event && event.kind === 'message' && event.change !== 'created';

/** The message the subscriber is receiving the text of, and how much of it it has. */
interface Writing {
  messageId: string;
  runId: string;
  threadId: string;
  delivered: number;
}

class ContentStream {
  private position: EventPosition = { threadSeq: 0, version: 0, sub: 0 };
  /** Whether the event at `position` ended its run (the thread's next event is then the next run's first). */
  private runEnded = false;
  private writing: Writing | undefined;
  /**
   * Resuming: the subscriber had the events up to the cursor, so the first message it sees
   * end (or find being written) without its CREATED, it had the text of up to `offset` (a
   * delta's cursor), or none of it.
   */
  private resumedText: { offset: number } | undefined;
  private done = false;

  constructor(
    private readonly deps: StreamDeps,
    private readonly scope: EventScope,
    private readonly live: AsyncIterable<BusItem<LiveEvent>>,
    /** Whether the stream ends with its run (runEvents). */
    private readonly endsWithRun: boolean,
  ) {}

  async *run(
    now: RunNow | undefined,
    resume: { position: EventPosition; offset: number | undefined } | undefined,
  ): AsyncGenerator<ContentDelivery> {
    if (resume) {
      this.position = resume.position;
      this.resumedText = { offset: resume.offset ?? 0 };
      yield* this.catchUp();
      if (this.done) return;
      // The message being written: the rest of its text.
      const message = await patiently(() => this.deps.history.messageBeingWritten(this.scope));
      if (message) {
        // It may have begun after the history was read: its CREATED (committed with it) comes
        // first then, and the subscriber gets all its text; else it had the text up to the cursor.
        yield* this.catchUp();
        if (this.done) return;
        this.follow(message.id, message.runId ?? '', message.threadId);
        if (this.writing?.messageId === message.id) yield* this.textFrom(message.content);
      }
    } else if (!now) {
      this.runEnded = true; // a thread without runs: its first event is its first run's QUEUED
    } else {
      // The run's current state first, then the text written so far.
      const start = now.run;
      this.position = now.position;
      this.runEnded = isTerminal(start.status);
      yield { event: now.event, run: start.version === now.event.version ? start : undefined };
      if (this.endsWithRun && this.runEnded) return;
      if (now.writing) {
        this.writing = { messageId: now.writing.id, runId: start.id, threadId: start.threadId, delivered: 0 };
        yield* this.textFrom(now.writing.content);
      }
    }
    for await (const item of this.live) {
      if (item.kind === 'resync') {
        yield* this.catchUp();
        yield* this.refill();
      } else if ('kind' in item.event && item.event.kind === 'delta') {
        yield* this.onDelta(item.event);
      } else {
        const event = item.event as RunStatusEvent | ItemEvent;
        const at = positionOf(event);
        if (comparePositions(at, this.position) <= 0) continue; // seen already
        if (this.isNext(at)) yield* this.deliver(event);
        else yield* this.catchUp(); // a gap (or an event ahead of one): history has both
      }
      if (this.done) return;
    }
  }

  /**
   * A live event that is the next in order and needs nothing read, as its delivery, if the
   * sink writes it: the stream moves past it as `deliver` would. A delta must continue
   * exactly the text delivered so far; a message's end (whose text is re-read) and anything
   * out of order are left to the generator: undefined, nothing moved.
   */
  take(item: BusItem<LiveEvent>, sink: DirectSink<ContentDelivery>): ContentDelivery | undefined {
    if (item.kind !== 'event') return undefined;
    const event = item.event;
    if ('kind' in event && event.kind === 'delta') return this.takeDelta(event, sink);
    return this.takeEvent(event as RunStatusEvent | ItemEvent, sink);
  }

  /** Whether the stream has delivered its run's end (runEvents): it ends there. */
  get ended(): boolean {
    return this.done;
  }

  private takeDelta(delta: TextDelta, sink: DirectSink<ContentDelivery>): ContentDelivery | undefined {
    const writing = this.writing;
    if (writing?.messageId !== delta.messageId || delta.text === null) return undefined;
    if (delta.index > writing.delivered || delta.index + delta.length <= writing.delivered) return undefined;
    const delivery = this.piece(writing, delta.text.slice(writing.delivered - delta.index));
    if (!sinkWrites(sink, delivery)) return undefined;
    writing.delivered += delivery.delta.text.length;
    return delivery;
  }

  private takeEvent(event: RunStatusEvent | ItemEvent, sink: DirectSink<ContentDelivery>): ContentDelivery | undefined {
    if (this.done || endsMessage(event) || !this.isNext(positionOf(event))) return undefined;
    const delivery = { event } as ContentDelivery;
    if (!sinkWrites(sink, delivery)) return undefined;
    this.advance(event);
    return delivery;
  }

  /** Moves past a durable event that needs nothing read: a status, a step, a message's CREATED. */
  private advance(event: RunStatusEvent | ItemEvent): void {
    this.position = positionOf(event);
    if (!('kind' in event)) {
      this.runEnded = isTerminal(event.status);
      if (this.endsWithRun && this.runEnded) this.done = true;
    } else if (event.kind === 'message') {
      this.resumedText = undefined;
      this.writing = { messageId: event.messageId, runId: event.runId, threadId: event.threadId, delivered: 0 };
    }
  }

  /** Where a resume continues from now: the last durable event delivered, and the text delivered since. */
  cursor(): string {
    return encodeContentCursor(this.position, this.writing?.delivered);
  }

  /** The durable event right after `position`: the next item of its version, the run's next status, the next run's first. */
  private isNext(p: EventPosition): boolean {
    const at = this.position;
    if (p.threadSeq === at.threadSeq)
      return (p.version === at.version && p.sub === at.sub + 1) || (p.version === at.version + 1 && p.sub === 0);
    return this.runEnded && p.threadSeq === at.threadSeq + 1 && p.version === 1 && p.sub === 0;
  }

  /** Everything durable after `position`, from history, page after page. */
  private async *catchUp(): AsyncGenerator<ContentDelivery> {
    for (;;) {
      const page = await patiently(() => this.deps.history.contentAfter(this.scope, this.position));
      for (const event of page.events) {
        if (comparePositions(positionOf(event), this.position) <= 0) continue;
        yield* this.deliver(event);
        if (this.done) return;
      }
      if (!page.more) return;
    }
  }

  private async *deliver(event: RunStatusEvent | ItemEvent): AsyncGenerator<ContentDelivery> {
    if (!endsMessage(event)) {
      this.advance(event);
      yield { event } as ContentDelivery;
      return;
    }
    // The message ended: whatever text the subscriber lacks comes first, and the position
    // moves past the end only after it (a cursor of that text resumes before the end).
    this.follow(event.messageId, event.runId, event.threadId);
    const message = await patiently(() => this.deps.history.message(event.messageId, hasEnded));
    if (message && this.writing?.messageId === event.messageId) yield* this.textFrom(message.content);
    if (this.writing?.messageId === event.messageId) this.writing = undefined;
    this.position = positionOf(event);
    yield { event, message };
  }

  /** A message met without its CREATED: followed from where the resume cursor left its text. */
  private follow(messageId: string, runId: string, threadId: string): void {
    if (this.writing?.messageId === messageId || !this.resumedText) return;
    this.writing = { messageId, runId, threadId, delivered: this.resumedText.offset };
    this.resumedText = undefined;
  }

  private async *onDelta(delta: TextDelta): AsyncGenerator<ContentDelivery> {
    if (this.writing?.messageId !== delta.messageId) {
      // Its CREATED has not reached us (a transport that orders them apart, or a gap):
      // history has it, if it is committed; text of a message we do not follow is skipped.
      yield* this.catchUp();
      if (this.writing?.messageId !== delta.messageId) return;
    }
    const writing = this.writing;
    const end = delta.index + delta.length;
    if (end <= writing.delivered) return; // had it
    if (delta.text === null || delta.index > writing.delivered) {
      yield* this.refill(end); // missed some, or not carried: the row has it all
      return;
    }
    yield this.text(writing, delta.text.slice(writing.delivered - delta.index));
  }

  /** The text of the message being written, re-read (at least `length` of it): what the subscriber lacks of it. */
  private async *refill(length = 0): AsyncGenerator<ContentDelivery> {
    const writing = this.writing;
    if (!writing) return;
    const message = await this.messageWith(writing.messageId, length);
    if (message && this.writing === writing) yield* this.textFrom(message.content);
  }

  /**
   * The message as read once it holds `length` characters or has ended: a delta is
   * announced ahead of the write that stores its text, so the row can be a write behind
   * what was heard. After {@link ROW_WAIT_MS}, the row as it is (its text was lost with
   * its worker: the message will end incomplete with what the row holds).
   */
  private async messageWith(messageId: string, length: number): Promise<MessageRow | undefined> {
    const holds = (row: MessageRow) => row.content.length >= length || row.status !== 'in_progress';
    const deadline = Date.now() + ROW_WAIT_MS;
    for (let delay = 5; ; delay = Math.min(delay * 2, 250)) {
      const row = await patiently(() => this.deps.history.message(messageId, holds));
      if (!row || holds(row) || Date.now() >= deadline) return row;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  /** What the subscriber lacks of `content`, the message's text as read. */
  private *textFrom(content: string): Generator<ContentDelivery> {
    const writing = this.writing;
    if (writing && content.length > writing.delivered) yield this.text(writing, content.slice(writing.delivered));
  }

  /** `text` delivered as the continuation of the message: the subscriber has it now. */
  private text(writing: Writing, text: string): ContentDelivery {
    const delivery = this.piece(writing, text);
    writing.delivered += text.length;
    return delivery;
  }

  /** The delivery of `text` as the continuation of what the subscriber has of the message. */
  private piece(writing: Writing, text: string): { delta: DeliveredDelta } {
    const index = writing.delivered;
    const { messageId, runId, threadId } = writing;
    const cursor = encodeContentCursor(this.position, index + text.length);
    return { delta: { runId, threadId, messageId, index, text, cursor, at: Math.floor(Date.now() / 1000) } };
  }
}

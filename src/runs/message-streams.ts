/**
 * The assistant message as the model writes it: opened (in_progress, with its
 * MESSAGE_CREATION step) at the first piece of text, appended to as pieces come, and
 * announced piece by piece as text deltas, without a commit per token: the pieces of all
 * of this process's runs that arrive while a write is under way go together in the next
 * (group commit, as db/batches), one statement and one announcement for all.
 *
 * A delta is announced only once its text is committed, so whoever reads the message row
 * after hearing a delta finds the text up to its end: a subscriber that missed deltas (or
 * resumes, on any process) continues from the row. The run's end (the engine's finish,
 * or a cancel, a failure, an expiry) ends the message; pieces still unwritten then are
 * dropped, the finish writing the whole answer.
 */
import { isTransientDatabaseError } from '../db/errors.js';
import type { RunRow } from '../db/schema.js';
import { newId } from '../domain/ids.js';
import { endsInHalfPair, storableText } from '../domain/text.js';
import type { Announcer } from './announcer.js';
import type { RunCore } from './core.js';
import { appendText, startMessages, type MessageStart, type TextAppend } from './sql/items.js';

/**
 * A notification carries at most ~7,900 bytes: the deltas of one write stay under this,
 * and a piece whose line alone is over {@link MAX_CARRIED_LINE} goes without its text
 * (the reader takes it from the row).
 */
const MAX_WRITE_BYTES = 6000;
const MAX_CARRIED_LINE = 1500;
/** The two item lines of an opened message, at most. */
const START_LINES_BYTES = 320;
/** A write that failed (the database is away) is tried again after this long. */
const RETRY_MS = 200;

/** What the engine's finish needs of a message stream. */
export interface StreamedMessage {
  messageId: string;
  stepId: string;
  /** Whether the message was opened: then the finish ends it rather than creates it. */
  started: boolean;
}

/**
 * new: nothing written yet; open: the message is in the database, in_progress; refused:
 * the run was no longer executing under this claim when it was to open; ended: open, then
 * ended by someone else (the run's end); closed: the engine is done with it.
 */
type Phase = 'new' | 'open' | 'refused' | 'ended' | 'closed';

export class MessageStream {
  readonly messageId = newId('msg');
  readonly stepId = newId('step');
  /** Text received and not yet written. */
  pending = '';
  /** Text written (or being written): where the next delta starts. */
  written = 0;
  phase: Phase = 'new';
  /** The write under way that carries this stream's text, if any. */
  writing: Promise<void> | undefined;

  constructor(
    private readonly writer: MessageWriter,
    readonly run: Pick<RunRow, 'id' | 'threadId'>,
    readonly leaseToken: string,
  ) {}

  /** A piece of the answer. */
  push(piece: string): void {
    if (this.phase !== 'new' && this.phase !== 'open') return;
    if (piece.length === 0) return;
    this.pending += piece;
    this.writer.dirty(this);
  }

  /** No more pieces: waits for the write under way, and says whether the message was opened. */
  async close(): Promise<StreamedMessage> {
    this.writer.forget(this);
    while (this.writing) await this.writing;
    const started = this.phase === 'open' || this.phase === 'ended';
    this.phase = 'closed';
    this.pending = '';
    return { messageId: this.messageId, stepId: this.stepId, started };
  }
}

/** One process's writer of message streams. */
export class MessageWriter {
  private readonly waiting = new Set<MessageStream>();
  private busy = false;

  constructor(
    private readonly core: RunCore,
    private readonly announcer: Pick<Announcer, 'text' | 'deltaLine'>,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  open(run: Pick<RunRow, 'id' | 'threadId'>, leaseToken: string): MessageStream {
    return new MessageStream(this, run, leaseToken);
  }

  dirty(stream: MessageStream): void {
    this.waiting.add(stream);
    if (this.busy) return;
    this.busy = true;
    // After the current turn: the pieces this turn adds go in the same write.
    setImmediate(() => void this.drain());
  }

  forget(stream: MessageStream): void {
    this.waiting.delete(stream);
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.size > 0) await this.writeSome();
    } finally {
      this.busy = false;
    }
  }

  /** One write: the waiting streams whose lines fit one announcement. */
  private async writeSome(): Promise<void> {
    const starts: { stream: MessageStream; text: string; line: string }[] = [];
    const appends: { stream: MessageStream; text: string; line: string }[] = [];
    let bytes = 0;
    for (const stream of this.waiting) {
      const text = takeWhole(stream);
      if (text === undefined) {
        this.waiting.delete(stream); // a dangling half of a surrogate pair: waits for its other half
        continue;
      }
      const full = this.announcer.deltaLine(stream.run.id, stream.run.threadId, stream.messageId, stream.written, text.length, text);
      const line =
        Buffer.byteLength(full) <= MAX_CARRIED_LINE
          ? full
          : this.announcer.deltaLine(stream.run.id, stream.run.threadId, stream.messageId, stream.written, text.length, null);
      const cost = Buffer.byteLength(line) + (stream.phase === 'new' ? START_LINES_BYTES : 0);
      if (bytes > 0 && bytes + cost > MAX_WRITE_BYTES) {
        stream.pending = text + stream.pending; // the next write takes it
        break;
      }
      bytes += cost;
      this.waiting.delete(stream);
      (stream.phase === 'new' ? starts : appends).push({ stream, text, line });
    }
    if (starts.length + appends.length === 0) return;
    const all = [...starts, ...appends];
    let done!: () => void;
    const writing = new Promise<void>((resolve) => (done = resolve));
    for (const { stream } of all) stream.writing = writing;
    try {
      await this.write(starts, appends);
    } catch (error) {
      // The database is away: the text waits for the next write (the finish writes the
      // whole answer anyway). Anything else is this write's data: those pieces are lost
      // to the deltas, and the finish still records the answer.
      if (!isTransientDatabaseError(error)) this.onError(error);
      for (const { stream, text } of all) {
        if (!isTransientDatabaseError(error) || stream.phase === 'closed') continue;
        stream.pending = text + stream.pending;
        setTimeout(() => stream.phase !== 'closed' && this.dirty(stream), RETRY_MS).unref();
      }
    } finally {
      for (const { stream } of all) stream.writing = undefined;
      done();
    }
  }

  private async write(
    starts: { stream: MessageStream; text: string; line: string }[],
    appends: { stream: MessageStream; text: string; line: string }[],
  ): Promise<void> {
    const { db } = this.core.deps;
    const text = this.announcer.text;
    const inStatement = 'inStatement' in text;
    const published: string[] = [];
    if (starts.length > 0) {
      // A message's CREATED and its first text are announced together, in order, by the
      // statement that opens it.
      const rows: MessageStart[] = starts.map(({ stream, text, line }) => ({
        runId: stream.run.id,
        leaseToken: stream.leaseToken,
        messageId: stream.messageId,
        stepId: stream.stepId,
        content: text,
        line,
      }));
      const opened = await startMessages(db, this.core.deps.announcer, rows, this.core.deps.clock());
      this.core.deps.announcer.committed();
      // Where that announcement is relayed (the outbox, on its way to Redis), the deltas
      // this writer publishes itself wait for it to go out: else they would reach
      // subscribers before the message they belong to, and each subscriber would read
      // history to place them.
      if (!inStatement) await this.core.deps.announcer.relayed();
      for (const { stream, text } of starts) {
        if (opened.has(stream.run.id)) {
          stream.phase = 'open';
          stream.written += text.length;
        } else stream.phase = 'refused';
      }
    }
    if (appends.length > 0) {
      const rows: TextAppend[] = appends.map(({ stream, text, line }) => ({
        runId: stream.run.id,
        leaseToken: stream.leaseToken,
        messageId: stream.messageId,
        text,
        line,
      }));
      const appended = await appendText(db, inStatement ? text.inStatement : undefined, rows);
      for (const { stream, text, line } of appends) {
        if (appended.has(stream.messageId)) {
          stream.written += text.length;
          published.push(line);
        } else stream.phase = 'ended';
      }
    }
    if (!inStatement && published.length > 0) text.publish(published.join('\n'));
  }
}

/**
 * The stream's text to write now, storable, and less a trailing half of a surrogate pair
 * (kept for its other half); undefined when there is nothing whole to write.
 */
function takeWhole(stream: MessageStream): string | undefined {
  let text = stream.pending;
  stream.pending = '';
  if (endsInHalfPair(text)) {
    stream.pending = text.slice(-1);
    text = text.slice(0, -1);
  }
  return text.length > 0 ? storableText(text) : undefined;
}

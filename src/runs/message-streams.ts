/**
 * The assistant message as the model writes it: opened (in_progress, with its
 * MESSAGE_CREATION step) at the first piece of text, then appended to as pieces come.
 *
 * Two paces: one for the eye, one for the record. Once the message is open, a piece is
 * announced as a text delta within {@link ANNOUNCE_MS} (the new pieces of all of this
 * process's runs in one announcement, outside any write), and written to the message row
 * behind it: the pieces that arrive while a write is under way go together in the next
 * (group commit, as db/batches), never a commit per token. A reader that missed deltas
 * (or resumes, on any process) continues from the row, waiting for it to reach the text it
 * heard of. The first text goes with the statement that opens the message, so its CREATED
 * comes before any delta.
 *
 * The run's end ends the message. The engine's finish writes the whole answer; its other
 * ends (tool calls, a failure, a cancel) first write what was announced, so the text a
 * message ends with is exactly what its deltas said. Pieces not announced by then are
 * dropped. A process that dies loses what it announced and had not yet written (a write's
 * worth); its message ends incomplete with the text the row holds.
 */
import { isTransientDatabaseError } from '../db/errors.js';
import type { RunRow } from '../db/schema.js';
import { newId } from '../domain/ids.js';
import { endsInHalfPair, storableText } from '../domain/text.js';
import type { Announcer } from './announcer.js';
import type { RunCore } from './core.js';
import { appendText, startMessages, type MessageStart, type TextAppend } from './sql/items.js';

/**
 * The statement that opens messages announces their first text with their events, in
 * notifications of at most ~7,900 bytes: the openings of one write stay under this, and a
 * piece whose line alone is over {@link MAX_CARRIED_LINE} goes without its text (the reader
 * takes it from the row).
 */
const MAX_WRITE_BYTES = 6000;
const MAX_CARRIED_LINE = 1500;
/** The two item lines of an opened message, at most. */
const START_LINES_BYTES = 320;
/** A write that failed (the database is away) is tried again after this long. */
const RETRY_MS = 200;
/**
 * Announcements are at least this far apart (one under way at a time): new text waits at
 * most this long, and each announcement carries the pieces of many runs, so the
 * announcements per second stay bounded whatever the tokens per second.
 */
const ANNOUNCE_MS = 2;
/** How long the run's end waits for announced text to be written while the database is away. */
const CLOSE_WAIT_MS = 10_000;

/** What the engine's finish needs of a message stream. */
export interface StreamedMessage {
  messageId: string;
  stepId: string;
  /** Whether the message was opened: then the finish ends it rather than creates it. */
  started: boolean;
}

/**
 * new: nothing written yet; opening: the message is in the database, its announcement
 * not yet out (relayed); open: in the database, in_progress, announced; refused: the run
 * was no longer executing under this claim when it was to open; ended: open, then ended
 * by someone else (the run's end); closed: the engine is done with it.
 */
type Phase = 'new' | 'opening' | 'open' | 'refused' | 'ended' | 'closed';

export class MessageStream {
  readonly messageId = newId('msg');
  readonly stepId = newId('step');
  /** Text received and not yet written, storable. */
  pending = '';
  /** Where `pending` begins in the message's text: what is before it is written, or being written. */
  taken = 0;
  /** How much of the message's text has been announced (once open, never less than `taken`). */
  announced = 0;
  phase: Phase = 'new';
  /** The write under way that carries this stream's text, if any. */
  writing: Promise<void> | undefined;
  /** A first half of a surrogate pair that ended the last piece, waiting for its other half. */
  private half = '';
  private closing = false;

  constructor(
    private readonly writer: MessageWriter,
    readonly run: Pick<RunRow, 'id' | 'threadId'>,
    readonly leaseToken: string,
  ) {}

  /** A piece of the answer. */
  push(piece: string): void {
    if (this.closing || !(this.phase === 'new' || this.phase === 'opening' || this.phase === 'open') || piece.length === 0) return;
    let text = this.half + piece;
    this.half = '';
    if (endsInHalfPair(text)) {
      this.half = text.slice(-1); // no delta splits a character
      text = text.slice(0, -1);
    }
    if (text.length === 0) return;
    this.pending += storableText(text);
    this.writer.received(this);
  }

  /** The text received and not announced yet. */
  unannounced(): string {
    return this.pending.slice(Math.max(0, this.announced - this.taken));
  }

  /**
   * No more pieces. Writes what was announced and is not written yet, unless the caller
   * writes the `whole` answer itself (the finish); says whether the message was opened.
   */
  async close(whole = false): Promise<StreamedMessage> {
    this.closing = true;
    const deadline = Date.now() + CLOSE_WAIT_MS;
    for (;;) {
      while (this.writing) await this.writing;
      const heard = this.phase === 'open' && !whole ? Math.max(0, this.announced - this.taken) : 0;
      this.pending = this.pending.slice(0, heard);
      if (this.pending.length === 0 || Date.now() > deadline) break;
      // Announced text is queued for a write (or for a retry while the database is away).
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.writer.forget(this);
    const started = this.phase === 'opening' || this.phase === 'open' || this.phase === 'ended';
    this.phase = 'closed';
    this.pending = '';
    return { messageId: this.messageId, stepId: this.stepId, started };
  }

  /** Takes the first `length` characters of the pending text, for a write. */
  take(length: number): string {
    const text = this.pending.slice(0, length);
    this.pending = this.pending.slice(length);
    this.taken += text.length;
    return text;
  }

  /** Gives back text a write could not write: the next write takes it first. */
  giveBack(text: string): void {
    this.pending = text + this.pending;
    this.taken -= text.length;
  }
}

interface Taken {
  stream: MessageStream;
  text: string;
  /** Its delta line (an opening's first text), carried by the statement. */
  line: string;
  /** Its statement committed (a write's later statement may still fail). */
  committed?: boolean;
}

/** One process's writer of message streams. */
export class MessageWriter {
  /** Streams with text to write: to open the message with, or announced. */
  private readonly toWrite = new Set<MessageStream>();
  /** Open streams with text to announce. */
  private readonly toAnnounce = new Set<MessageStream>();
  private busy = false;
  private announcing = false;
  private lastAnnouncement = 0;

  constructor(
    private readonly core: RunCore,
    private readonly announcer: Pick<Announcer, 'text' | 'deltaLine'>,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  open(run: Pick<RunRow, 'id' | 'threadId'>, leaseToken: string): MessageStream {
    return new MessageStream(this, run, leaseToken);
  }

  /** New text: announced soon where the message is open, else it opens the message. */
  received(stream: MessageStream): void {
    if (stream.phase === 'open') this.announceSoon(stream);
    else this.dirty(stream);
  }

  /** The stream has text to write. */
  dirty(stream: MessageStream): void {
    this.toWrite.add(stream);
    if (this.busy) return;
    this.busy = true;
    // After the current turn: the pieces this turn adds go in the same write.
    setImmediate(() => void this.drain());
  }

  forget(stream: MessageStream): void {
    this.toWrite.delete(stream);
    this.toAnnounce.delete(stream);
  }

  private announceSoon(stream: MessageStream): void {
    this.toAnnounce.add(stream);
    if (this.announcing) return;
    this.announcing = true;
    const wait = this.lastAnnouncement + ANNOUNCE_MS - Date.now();
    if (wait > 0) setTimeout(() => void this.announce(), wait);
    else setImmediate(() => void this.announce());
  }

  /** Announces the new text of every open stream, one announcement at a time, then has it written. */
  private async announce(): Promise<void> {
    try {
      while (this.toAnnounce.size > 0) {
        const lines: string[] = [];
        for (const stream of this.toAnnounce) {
          this.toAnnounce.delete(stream);
          if (stream.phase !== 'open') continue;
          const text = stream.unannounced();
          if (text.length === 0) continue;
          lines.push(this.lineOf(stream, stream.announced, text));
          stream.announced += text.length;
          this.dirty(stream);
        }
        if (lines.length === 0) continue;
        this.lastAnnouncement = Date.now();
        // A lost announcement loses no text: the row gets it, and readers fill the gap from there.
        await this.announcer.text.publish(lines).catch((error: unknown) => this.onError(error));
        const wait = this.lastAnnouncement + ANNOUNCE_MS - Date.now();
        if (wait > 0 && this.toAnnounce.size > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
    } finally {
      this.announcing = false;
    }
  }

  private lineOf(stream: MessageStream, index: number, text: string): string {
    const { id, threadId } = stream.run;
    const full = this.announcer.deltaLine(id, threadId, stream.messageId, index, text.length, text);
    return Buffer.byteLength(full) <= MAX_CARRIED_LINE
      ? full
      : this.announcer.deltaLine(id, threadId, stream.messageId, index, text.length, null);
  }

  private async drain(): Promise<void> {
    try {
      while (this.toWrite.size > 0) await this.writeSome();
    } finally {
      this.busy = false;
    }
  }

  /** One write: the messages to open (as many as one announcement carries) and the announced text of the open ones. */
  private async writeSome(): Promise<void> {
    const starts: Taken[] = [];
    const appends: Taken[] = [];
    let bytes = 0;
    for (const stream of this.toWrite) {
      if (stream.phase === 'open') {
        this.toWrite.delete(stream);
        const text = stream.take(stream.announced - stream.taken);
        if (text.length > 0) appends.push({ stream, text, line: '' });
        continue;
      }
      if (stream.phase !== 'new' || stream.pending.length === 0) {
        this.toWrite.delete(stream);
        continue;
      }
      const line = this.lineOf(stream, 0, stream.pending);
      const cost = Buffer.byteLength(line) + START_LINES_BYTES;
      if (bytes > 0 && bytes + cost > MAX_WRITE_BYTES) continue; // the next write opens it
      bytes += cost;
      this.toWrite.delete(stream);
      starts.push({ stream, text: stream.take(stream.pending.length), line });
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
      // to the row, and the finish still records the answer.
      if (!isTransientDatabaseError(error)) this.onError(error);
      for (const { stream, text, committed } of all) {
        if (committed || !isTransientDatabaseError(error) || stream.phase === 'closed') continue;
        stream.giveBack(text);
        setTimeout(() => stream.phase !== 'closed' && this.dirty(stream), RETRY_MS).unref();
      }
    } finally {
      for (const { stream } of all) stream.writing = undefined;
      done();
    }
  }

  private async write(starts: Taken[], appends: Taken[]): Promise<void> {
    const { db, announcer, clock } = this.core.deps;
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
      const opened = await startMessages(db, announcer, rows, clock());
      for (const start of starts) start.committed = true; // not to be written again if the appends fail
      announcer.committed();
      for (const { stream } of starts) stream.phase = opened.has(stream.run.id) ? 'opening' : 'refused';
      // Where that announcement is relayed (the outbox, on its way to Redis), the deltas
      // that follow wait for it to go out: else they would reach subscribers before the
      // message they belong to, and each subscriber would read history to place them.
      // The writes go on meanwhile (a relay pass takes several round trips).
      void announcer.relayed().then(() => {
        for (const { stream, text } of starts) {
          if (stream.phase !== 'opening') continue; // closed meanwhile
          stream.phase = 'open';
          stream.announced = text.length;
          if (stream.pending.length > 0) this.announceSoon(stream); // what came while it opened
        }
      });
    }
    if (appends.length > 0) {
      const rows: TextAppend[] = appends.map(({ stream, text }) => ({
        runId: stream.run.id,
        leaseToken: stream.leaseToken,
        messageId: stream.messageId,
        text,
      }));
      const appended = await appendText(db, rows);
      for (const { stream } of appends) if (!appended.has(stream.messageId)) stream.phase = 'ended';
    }
  }
}

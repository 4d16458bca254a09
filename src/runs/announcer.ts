/**
 * How the run store announces what it committed: a port owned by runs/, implemented by
 * realtime/ (PostgreSQL NOTIFY, or an outbox relayed to Redis). Every write that records
 * run events announces them in the same statement or transaction, through the one
 * transition core (runs/sql/changes.ts for single statements, RunCore's commit for
 * transactions), so no write path can record an event and not announce it, and a crash
 * between the commit and the announcement loses nothing.
 *
 * Text deltas are the exception: they are not durable events (the message row holds the
 * text), so they are announced as soon as the model wrote them, ahead of the write that
 * stores them (runs/message-streams.ts); a reader that misses one reads the text from the
 * row once the row has it.
 */
import type { SQL, SQLWrapper } from 'drizzle-orm';
import type { Executor } from '../db/client.js';
import type { RunStatusEvent } from '../domain/run.js';
import type { ItemEvent } from '../domain/run-events.js';

/** An event's columns, as a statement that writes event rows sees them. */
export type EventColumns = Record<keyof RunStatusEvent, SQLWrapper>;

/** An item event's columns, as a statement that writes item event rows sees them. */
export type ItemColumns = Record<'kind' | 'runId' | 'threadId' | 'threadSeq' | 'version' | 'sub' | 'itemId' | 'change' | 'at', SQLWrapper>;

export interface Announcer {
  /** One status event's line, as SQL over its columns. */
  statusLine(events: EventColumns): SQL;
  /** One item event's line, as SQL over its columns. */
  itemLine(items: ItemColumns): SQL;
  /** A text delta's line (`text` null: the piece is not carried, the reader takes it from the message). */
  deltaLine(runId: string, threadId: string, messageId: string, index: number, length: number, text: string | null): string;
  /**
   * An expression, for a statement that writes event rows, announcing them as it commits:
   * `lines` is an aggregate of their lines (newline-separated, in order), evaluated once
   * per statement.
   */
  inStatement(lines: SQL): SQL;
  /** Announces these events when the surrounding transaction commits. Once per transaction. */
  inTransaction(tx: Executor, events: readonly (RunStatusEvent | ItemEvent)[]): Promise<void>;
  /** A write that announced has committed: an announcer that relays may do so now. */
  committed(): void;
  /**
   * Resolves once what this process committed so far has been announced: at once where a
   * commit announces (NOTIFY), after a relay pass where announcements are relayed.
   */
  relayed(): Promise<void>;
  /**
   * Text deltas, announced at once, outside any write: these delta lines, in order, in as
   * few announcements as they fit. Resolves once they are on their way.
   */
  text: { publish(lines: readonly string[]): Promise<void> };
}

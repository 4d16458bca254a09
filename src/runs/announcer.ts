/**
 * How the run store announces what it committed: a port owned by runs/, implemented by
 * realtime/ (PostgreSQL NOTIFY, or an outbox relayed to Redis). Every write that records
 * run events announces them in the same statement or transaction, through the one
 * transition core (runs/sql/changes.ts for single statements, RunCore's commit for
 * transactions), so no write path can record an event and not announce it, and a crash
 * between the commit and the announcement loses nothing.
 */
import type { SQL, SQLWrapper } from 'drizzle-orm';
import type { Executor } from '../db/client.js';
import type { RunStatusEvent } from '../domain/run.js';

/** An event's columns, as a statement that writes event rows sees them. */
export type EventColumns = Record<keyof RunStatusEvent, SQLWrapper>;

export interface Announcer {
  /**
   * An expression, for a statement that writes event rows, announcing them as it commits:
   * an aggregate over the rows' columns, evaluated once per statement.
   */
  inStatement(events: EventColumns): SQL;
  /** Announces these events when the surrounding transaction commits. Once per transaction. */
  inTransaction(tx: Executor, events: readonly RunStatusEvent[]): Promise<void>;
  /** A write that announced has committed: an announcer that relays may do so now. */
  committed(): void;
}

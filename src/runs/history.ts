/**
 * The runs' history, for subscriptions: the event that left a run as it is, the events
 * after a position, where a thread's history ends, and the run an event is about.
 */
import DataLoader from 'dataloader';
import { and, desc, eq } from 'drizzle-orm';
import { messages, runs, runSteps, type MessageRow, type RunRow, type RunStepRow } from '../db/schema.js';
import { CursorExpiredError } from '../domain/errors.js';
import type { RunStatusEvent } from '../domain/run.js';
import { comparePositions, positionOf, type EventPosition, type ItemEvent } from '../domain/run-events.js';
import type { RunCore } from './core.js';
import * as store from './sql/index.js';
import type { RunNowRow } from './sql/index.js';

/** A run as a live stream of it starts: see {@link RunHistory.runNow}. */
export interface RunNow {
  run: RunRow;
  event: RunStatusEvent;
  position: EventPosition;
  writing: MessageRow | undefined;
}

/** Whose events: one run's, or every run's of a thread. */
export type EventScope = { runId: string } | { threadId: string };

/** A page of durable events, in order, and whether more may follow it. */
export interface EventPage {
  events: (RunStatusEvent | ItemEvent)[];
  more: boolean;
}

export class RunHistory {
  constructor(private readonly core: RunCore) {}

  /** Where the thread's event history ends now ({0, 0} before its first run; where it was pruned to, once all of it was). */
  async lastThreadPosition(threadId: string): Promise<{ threadSeq: number; version: number }> {
    const db = this.core.deps.db;
    const [last, floor] = await Promise.all([store.lastThreadPosition(db, threadId), store.historyFloor(db, threadId)]);
    return floor && comparePositions({ ...last, sub: 0 }, floor) < 0 ? { threadSeq: floor.threadSeq, version: floor.version } : last;
  }

  /**
   * Refuses a resume from `after` when events after it were pruned (CURSOR_EXPIRED): a
   * gap would follow. `statusOnly`: the stream carries status events only, so the item
   * events pruned after the last status event it had are no loss.
   */
  async assertResumable(scope: { threadId: string; runId?: string }, after: EventPosition, statusOnly = false): Promise<void> {
    const floor = await store.historyFloor(this.core.deps.db, scope.threadId);
    if (!floor) return;
    const lacking = statusOnly ? comparePositions({ ...after, sub: 0 }, { ...floor, sub: 0 }) < 0 : comparePositions(after, floor) < 0;
    if (lacking) throw new CursorExpiredError(scope);
  }

  async threadEventsAfter(threadId: string, after: { threadSeq: number; version: number }, limit?: number) {
    return store.threadEventsAfter(this.core.deps.db, threadId, after, limit);
  }

  /**
   * The run for an event's `run` field: as that event's change left it. Every subscriber
   * of an event asks at once, so the reads of one (run, version) are shared while they
   * are in flight.
   */
  runForEvent(runId: string, version: number): Promise<RunRow | undefined> {
    return shared(this.eventReads, `${runId}:${version}`, undefined, () => store.findRunAsOf(this.core.deps.db, runId, version));
  }

  private readonly eventReads = new Map<string, Promise<RunRow | undefined>>();

  async eventsAfter(runId: string, afterVersion: number) {
    return store.runEventsAfter(this.core.deps.db, runId, afterVersion);
  }

  /**
   * Every durable event (status changes and item events) after a position, in order: a
   * page of at most about `limit`, merged from the two histories (cut where the fuller of
   * them stopped, so nothing is skipped).
   */
  async contentAfter(scope: EventScope, after: EventPosition, limit = 500): Promise<EventPage> {
    const { statuses, items } = await store.eventsAfter(this.core.deps.db, scope, after, limit);
    let events: (RunStatusEvent | ItemEvent)[] = [...statuses, ...items].sort((a, b) => comparePositions(positionOf(a), positionOf(b)));
    // A full page may have more after it: nothing past the earliest such page's end is sure yet.
    const lists: (RunStatusEvent | ItemEvent)[][] = [statuses, items];
    const ends = lists.flatMap((list) => (list.length >= limit ? list.slice(-1) : [])).map(positionOf);
    const cut = ends.sort(comparePositions)[0];
    if (cut) events = events.filter((e) => comparePositions(positionOf(e), cut) <= 0);
    return { events, more: cut !== undefined };
  }

  /**
   * Where a live stream of the run starts without a cursor: the run, the event that left it
   * as it is, the last item event after that, and the message it is writing (if any); one
   * statement. Undefined when the project has no such run.
   */
  runNow(projectId: string, runId: string): Promise<RunNow | undefined> {
    return this.nowOfRuns.load(runId).then((now) => {
      // Another project's run is as absent as a missing one.
      if (!now || now.run.projectId !== projectId) return undefined;
      const { run, sub } = now;
      return {
        run,
        event: now.event ?? madeUpEvent(run),
        position: { threadSeq: run.threadSeq, version: run.version, sub },
        writing: now.writing,
      };
    });
  }

  /**
   * The runNow reads of one turn of the event loop, as one statement: a run's subscribers
   * often subscribe together (a chat UI's tabs, a stream and its status badge), and one
   * statement for five took a fifth of the round trips. Nothing is cached: each read is a
   * statement sent after its caller asked. A caller subscribes to the bus before it asks,
   * so the snapshot it gets is later than its subscription, as it would be alone.
   */
  private readonly nowOfRuns = new DataLoader<string, RunNowRow | undefined>(
    async (runIds) => {
      const rows = await store.runsNowOf(this.core.deps.db, runIds);
      return runIds.map((id) => rows.get(id));
    },
    // A reconnecting crowd (every socket of a restarted gateway) is read 500 runs a statement.
    { cache: false, batchScheduleFn: (dispatch) => setImmediate(dispatch), maxBatchSize: 500 },
  );

  /** The thread's latest run, if it has any. */
  async latestRun(threadId: string): Promise<RunRow | undefined> {
    const [run] = await this.core.deps.db.select().from(runs).where(eq(runs.threadId, threadId)).orderBy(desc(runs.id)).limit(1);
    return run;
  }

  /** The message a run of this thread is writing now, if any (a thread has one active run). */
  async messageBeingWritten(scope: EventScope): Promise<MessageRow | undefined> {
    const where = 'runId' in scope ? eq(messages.runId, scope.runId) : eq(messages.threadId, scope.threadId);
    const [row] = await this.core.deps.db
      .select()
      .from(messages)
      .where(and(where, eq(messages.status, 'in_progress')))
      .limit(1);
    return row;
  }

  /**
   * A message, for the events about it. Every subscriber of an event asks at once, so
   * reads of one message are shared while in flight. A read in flight may have begun before
   * the change the caller heard of committed: `current` says whether a row shows it, and a
   * row that does not is read again, alone.
   */
  message(messageId: string, current?: (row: MessageRow) => boolean): Promise<MessageRow | undefined> {
    return shared(this.messageReads, messageId, current, () => store.findMessage(this.core.deps.db, messageId));
  }

  /** A step, for the events about it (reads shared as for messages). */
  step(stepId: string, current?: (row: RunStepRow) => boolean): Promise<RunStepRow | undefined> {
    return shared(this.stepReads, stepId, current, async () => {
      const [row] = await this.core.deps.db.select().from(runSteps).where(eq(runSteps.id, stepId)).limit(1);
      return row;
    });
  }

  private readonly messageReads = new Map<string, Promise<MessageRow | undefined>>();
  private readonly stepReads = new Map<string, Promise<RunStepRow | undefined>>();
}

/** The event that left the run as it is, made up from the run (its record was pruned). */
function madeUpEvent(run: RunRow): RunStatusEvent {
  return store.eventOf(run, run.completedAt ?? run.failedAt ?? run.cancelledAt ?? run.createdAt);
}

/**
 * One read per key while it is in flight, shared by every caller; a caller for whom the
 * shared row is not `current` (the read began before what it heard of) reads alone.
 */
export async function shared<T extends object>(
  reads: Map<string, Promise<T | undefined>>,
  key: string,
  current: ((row: T) => boolean) | undefined,
  read: () => Promise<T | undefined>,
): Promise<T | undefined> {
  let pending = reads.get(key);
  if (!pending) {
    pending = read().finally(() => reads.delete(key));
    reads.set(key, pending);
  }
  const row = await pending;
  return row && current && !current(row) ? read() : row;
}

/**
 * The runs' history, for subscriptions: the event that left a run as it is, the events
 * after a position, where a thread's history ends, and the run an event is about.
 */
import type { RunRow } from '../db/schema.js';
import type { RunStatusEvent } from '../domain/run.js';
import type { RunCore } from './core.js';
import * as store from './sql/index.js';

export class RunHistory {
  constructor(private readonly core: RunCore) {}

  /** The event that left the run in its current state. */
  async currentEvent(run: RunRow): Promise<RunStatusEvent> {
    return (await store.findRunEvent(this.core.deps.db, run.id, run.version)) ?? store.eventOf(run, run.createdAt);
  }

  /** Where the thread's event history ends now ({0, 0} before its first run). */
  async lastThreadPosition(threadId: string): Promise<{ threadSeq: number; version: number }> {
    return store.lastThreadPosition(this.core.deps.db, threadId);
  }

  async threadEventsAfter(threadId: string, after: { threadSeq: number; version: number }, limit?: number) {
    return store.threadEventsAfter(this.core.deps.db, threadId, after, limit);
  }

  /**
   * The run for an event's `run` field. Every subscriber of an event asks at once, so
   * the reads of one (run, version) are shared while they are in flight.
   */
  runForEvent(runId: string, version: number): Promise<RunRow | undefined> {
    const key = `${runId}:${version}`;
    let pending = this.eventReads.get(key);
    if (!pending) {
      pending = store.findRun(this.core.deps.db, runId).finally(() => this.eventReads.delete(key));
      this.eventReads.set(key, pending);
    }
    return pending;
  }

  private readonly eventReads = new Map<string, Promise<RunRow | undefined>>();

  async eventsAfter(runId: string, afterVersion: number) {
    return store.runEventsAfter(this.core.deps.db, runId, afterVersion);
  }
}

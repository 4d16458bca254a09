/**
 * The subscription streams. Both register with the bus before they read the database,
 * and both fill any gap in a run's versions from `run_events`, so a subscriber sees every
 * transition of a run once, in version order, whatever order the bus delivered them in.
 */
import type { RunRow } from '../db/schema.js';
import { NotFoundError } from '../domain/errors.js';
import type { RunStatusEvent } from '../domain/run.js';
import { isTerminal } from '../domain/run-status.js';
import type { RunService } from '../runs/run-service.js';
import type { ThreadService } from '../threads/thread-service.js';
import type { PublishedEvent, RunEventBus } from './event-bus.js';

export interface StreamDeps {
  bus: RunEventBus;
  runs: RunService;
  threads: ThreadService;
}

/**
 * Tracks the last version delivered per run and turns each incoming event into the
 * events to deliver: none (already seen), or the missing ones from the store, then it.
 */
class VersionCursor {
  private readonly delivered = new Map<string, number>();

  constructor(private readonly runs: RunService) {}

  mark(runId: string, version: number): void {
    this.delivered.set(runId, version);
  }

  async accept(published: PublishedEvent): Promise<PublishedEvent[]> {
    const { runId, version } = published.event;
    const last = this.delivered.get(runId);
    if (last === undefined) {
      this.delivered.set(runId, version);
      return [published];
    }
    if (version <= last) return [];
    const out: PublishedEvent[] = [];
    if (version > last + 1) {
      for (const event of await this.runs.eventsAfter(runId, last)) {
        if (event.version >= version) break;
        out.push({ event });
      }
    }
    out.push(published);
    this.delivered.set(runId, version);
    return out;
  }
}

/**
 * runStatusChanged: the run's current state first, then every later transition; ends
 * after the run reaches a terminal status (it can never change again).
 * Throws NOT_FOUND before any event when the run does not exist.
 */
export async function runStatusStream(deps: StreamDeps, runId: string): Promise<AsyncIterable<PublishedEvent>> {
  const live = deps.bus.subscribe(`run:${runId}`);
  let run: RunRow | undefined;
  let current: RunStatusEvent | undefined;
  try {
    run = await deps.runs.getById(runId);
    if (!run) throw new NotFoundError('run', runId);
    current = (await deps.runs.eventAt(runId, run.version)) ?? {
      runId,
      threadId: run.threadId,
      version: run.version,
      previousStatus: run.previousStatus,
      status: run.status,
      at: run.createdAt,
    };
  } catch (error) {
    live.close();
    throw error;
  }
  const first: PublishedEvent = { event: current, run };
  const cursor = new VersionCursor(deps.runs);
  cursor.mark(runId, current.version);

  return closable(
    (async function* () {
      try {
        yield first;
        if (isTerminal(current.status)) return;
        for await (const published of live) {
          for (const e of await cursor.accept(published)) {
            yield e;
            if (isTerminal(e.event.status)) return;
          }
        }
      } finally {
        live.close();
      }
    })(),
    () => live.close(),
  );
}

/** threadRunsChanged: every transition of every run of the thread, from now on. */
export async function threadRunsStream(deps: StreamDeps, threadId: string): Promise<AsyncIterable<PublishedEvent>> {
  const live = deps.bus.subscribe(`thread:${threadId}`);
  const thread = await deps.threads.get(threadId).catch((error: unknown) => {
    live.close();
    throw error;
  });
  if (!thread) {
    live.close();
    throw new NotFoundError('thread', threadId);
  }
  const cursor = new VersionCursor(deps.runs);
  return closable(
    (async function* () {
      try {
        for await (const published of live) yield* await cursor.accept(published);
      } finally {
        live.close();
      }
    })(),
    () => live.close(),
  );
}

/**
 * An async generator's return() waits while the generator awaits (here: the next event,
 * which may never come), so a client's unsubscribe would leak until the next event.
 * This closes the source first, which ends that wait, then returns.
 */
function closable<T>(generator: AsyncGenerator<T>, close: () => void): AsyncIterableIterator<T> {
  return {
    next: () => generator.next(),
    return: (value?: unknown) => {
      close();
      return generator.return(value as T);
    },
    throw: (error?: unknown) => {
      close();
      return generator.throw(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

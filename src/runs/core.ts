/**
 * The transition core of the run faces: the database, the announcer and the clock they
 * share, the statements of the hot paths (each announces its own events), and the one
 * transaction in which every other write that records run events commits and announces
 * them. Nothing writes run events but through here.
 */
import type { Db, Tx } from '../db/client.js';
import type { RowWriteOptions } from '../db/row-writes.js';
import type { RunRow } from '../db/schema.js';
import { NotFoundError } from '../domain/errors.js';
import type { RunStatusEvent } from '../domain/run.js';
import { comparePositions, positionOf, type ItemEvent } from '../domain/run-events.js';
import type { RunStatus } from '../domain/run-lifecycle.js';
import { threadExists } from '../threads/thread-service.js';
import { runTransitions } from '../observability/metrics.js';
import type { Announcer } from './announcer.js';
import * as store from './sql/index.js';

export interface RunDeps {
  db: Db;
  /** Announces committed transitions to every process. */
  announcer: Announcer;
  /** Unix seconds now. */
  clock: () => number;
  runExpiresAfterSeconds: number;
  /** Whether some model provider serves this model. @default every model */
  modelSupported?: (model: string) => boolean;
  /**
   * How many of a client's writes to runs (cancel, modify, submitToolOutputs) may hold a
   * connection at once, and how long one waits for its turn (see db/row-writes).
   * @default 5 at once, 1000 ms
   */
  runWrites?: RowWriteOptions;
}

/** What a transition hands back: the run as it left it, and its event. */
export type Moved = { run: RunRow; event: RunStatusEvent };

/**
 * Events one transaction may announce: their lines must fit one notification (at most
 * 7,900 bytes; a line is up to ~120 bytes).
 */
export const MAX_EVENTS_PER_COMMIT = 50;

/** How many times a use case re-reads and retries when a concurrent change beat it. */
export const MAX_ATTEMPTS = 5;

/** Committed transitions, counted by status for the metrics (every write path comes through here). */
function counted(moves: readonly Moved[]): void {
  for (const m of moves) runTransitions.labels(m.event.status).inc();
}

export class RunCore {
  constructor(readonly deps: RunDeps) {}

  /**
   * The statements the hot paths run, each built once on first use (prepared), each
   * announcing its own events as it commits.
   */
  get statements() {
    if (!this.built) {
      const { db, announcer } = this.deps;
      const announce: store.AnnounceEvents = announcer;
      // Each statement announces its events as it commits; then the announcer may relay.
      const announced =
        <A extends unknown[], R>(statement: (...args: A) => Promise<R>) =>
        async (...args: A): Promise<R> => {
          const result = await statement(...args);
          announcer.committed();
          if (Array.isArray(result)) counted(result as Moved[]);
          return result;
        };
      this.built = {
        createRuns: announced(store.createRunsStatement(db, announce)),
        claim: announced(store.claimStatement(db, announce)),
        finish: {
          completed: announced(store.finishRunsStatement(db, 'completed', announce)),
          incomplete: announced(store.finishRunsStatement(db, 'incomplete', announce)),
        },
      };
    }
    return this.built;
  }

  private built:
    | {
        createRuns: ReturnType<typeof store.createRunsStatement>;
        claim: ReturnType<typeof store.claimStatement>;
        finish: Record<'completed' | 'incomplete', ReturnType<typeof store.finishRunsStatement>>;
      }
    | undefined;

  /** The run, or undefined when it does not exist in that thread of that project. */
  get(projectId: string, threadId: string, runId: string): Promise<RunRow | undefined> {
    return store.findRunInThread(this.deps.db, projectId, threadId, runId);
  }

  /**
   * Any legal status change, with its data; ends the run's open steps when the run ends.
   * Returns undefined when the guard or the transition table refused it.
   */
  async transition(
    runId: string,
    to: RunStatus,
    data: store.TransitionData = {},
    guard: store.TransitionGuard = {},
  ): Promise<RunRow | undefined> {
    const [run] = await this.transitionMany(to, [{ runId, data, guard }]);
    return run;
  }

  /**
   * {@link transition} for many runs going to the same status, each with its own data and
   * guard: one transaction and one notification per {@link MAX_EVENTS_PER_COMMIT} runs.
   * Returns the runs that moved.
   */
  async transitionMany(to: RunStatus, moves: readonly store.RunMove[]): Promise<RunRow[]> {
    const moved: RunRow[] = [];
    for (let i = 0; i < moves.length; i += MAX_EVENTS_PER_COMMIT) {
      const now = this.deps.clock();
      const batch = await this.commit(async (tx, items) => {
        const batch = await store.transitionRuns(tx, to, now, moves.slice(i, i + MAX_EVENTS_PER_COMMIT));
        items.push(
          ...(await store.closeOpenItems(
            tx,
            batch.map((m) => m.run),
            to,
            now,
          )),
        );
        return batch;
      });
      moved.push(...batch.map((m) => m.run));
    }
    return moved;
  }

  /**
   * Runs `work` in a transaction and announces the transitions it made (and the item
   * events it adds to `items`) as it commits: the one place events leave a transaction,
   * so there is one notification per transaction however many runs it moved.
   */
  async commit<T extends Moved | Moved[] | undefined>(work: (tx: Tx, items: ItemEvent[]) => Promise<T>): Promise<T> {
    const result = await this.deps.db.transaction(async (tx) => {
      const items: ItemEvent[] = [];
      const result = await work(tx, items);
      const moves = result === undefined ? [] : Array.isArray(result) ? result.map((r) => r.event) : [result.event];
      // In each run's order: what happened inside it before the status change that followed.
      const events = [...items, ...moves].sort((a, b) =>
        a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : comparePositions(positionOf(a), positionOf(b)),
      );
      await this.deps.announcer.inTransaction(tx, events);
      return result;
    });
    this.deps.announcer.committed();
    if (result !== undefined) counted(Array.isArray(result) ? result : [result]);
    return result;
  }

  async require(projectId: string, threadId: string, runId: string): Promise<RunRow> {
    const run = await this.get(projectId, threadId, runId);
    if (!run) {
      await this.requireThread(projectId, threadId);
      throw new NotFoundError('run', runId);
    }
    return run;
  }

  async requireThread(projectId: string, threadId: string): Promise<void> {
    if (!(await threadExists(this.deps.db, projectId, threadId))) throw new NotFoundError('thread', threadId);
  }
}

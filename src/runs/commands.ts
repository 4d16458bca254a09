/**
 * What clients may do with runs (the GraphQL resolvers, and any other face of the API):
 * read them, page them, create (creation.ts), modify, cancel, and hand them tool outputs.
 * Each use case opens its own transaction and applies the lifecycle through the run store.
 */
import {
  DEFAULT_PAGE_SIZE,
  planKeysetPage,
  readList,
  type ListArgs,
  type ListPage,
  type Page,
  type PageArgs,
  type SortOrder,
} from '../db/keyset.js';
import { rowWrites, type RowWrites } from '../db/row-writes.js';
import type { RunRow, RunStepRow } from '../db/schema.js';
import { InvalidRunStateError, NotFoundError } from '../domain/errors.js';
import type { Metadata, ToolOutput } from '../domain/run.js';
import { cancelMove, type RunStatus } from '../domain/run-lifecycle.js';
import { idempotentRequest, once, recordKey, type IdempotentRequest } from '../idempotency/idempotency.js';
import { MAX_ATTEMPTS, type RunCore } from './core.js';
import { RunCreation } from './creation.js';
import { checkToolOutputs, type CreateRunInput, type CreateThreadAndRunInput } from './run-input.js';
import * as store from './sql/index.js';

export type { CreateRunInput, CreateThreadAndRunInput } from './run-input.js';

/** A page of a run's steps: which run, and the page's arguments (oldest first by default). */
export interface StepPageKey extends PageArgs {
  runId: string;
}

/** First pages of steps of the same order and size: the runs one statement reads them for. */
interface FirstPages {
  order: SortOrder;
  size: number;
  runIds: string[];
  rows?: Promise<Map<string, RunStepRow[]>>;
}

export class RunCommands {
  /**
   * A client's writes to a run (cancel, modify, submitToolOutputs): each use case in its
   * run's turn, its write on a slot (see db/row-writes). The turn is the project's and
   * the run's: a request naming another project's run never waits behind that run's
   * writes, nor learns from their outcome that it exists; it reads NOT_FOUND.
   */
  private readonly runWrites: RowWrites;

  /** createRun and createThreadAndRun. */
  private readonly creation: RunCreation;

  constructor(private readonly core: RunCore) {
    this.runWrites = rowWrites(core.deps.runWrites ?? { slots: 5, slotWaitMs: 1000 });
    this.creation = new RunCreation(core);
  }

  /** The run, or undefined when it does not exist in that thread of that project. */
  get(projectId: string, threadId: string, runId: string): Promise<RunRow | undefined> {
    return this.core.get(projectId, threadId, runId);
  }

  /** The run in that project, whatever its thread. */
  getInProject(projectId: string, runId: string): Promise<RunRow | undefined> {
    return store.findRunInProject(this.core.deps.db, projectId, runId);
  }

  /** Those of these runs that are in this project (a node lookup), in no particular order. */
  manyInProject(projectId: string, runIds: readonly string[]): Promise<RunRow[]> {
    return store.findRunsInProject(this.core.deps.db, projectId, runIds);
  }

  /** A page of the thread's runs; NOT_FOUND when the project has no such thread. One statement. */
  async list(projectId: string, threadId: string, args: PageArgs, statuses?: readonly RunStatus[] | null): Promise<Page<RunRow>> {
    const page = await store.listRunsInProject(this.core.deps.db, projectId, threadId, args, statuses);
    if (!page) throw new NotFoundError('thread', threadId);
    return page;
  }

  /** A page of the thread's runs as the Assistants API lists them (object ids as cursors, newest first by default); NOT_FOUND as `list`. */
  listRuns(projectId: string, threadId: string, args: ListArgs = {}): Promise<ListPage<RunRow>> {
    return readList(args, 'run', (pageArgs) => this.list(projectId, threadId, pageArgs));
  }

  /** A thread's runs when the thread is already known to be the caller's (a Thread's `runs` field). */
  async listOfThread(thread: { id: string }, args: PageArgs, statuses?: readonly RunStatus[] | null): Promise<Page<RunRow>> {
    return store.listRuns(this.core.deps.db, thread.id, args, statuses);
  }

  /** A new run; with an idempotency key, a retry gets the first one. */
  create(projectId: string, threadId: string, input: CreateRunInput, idempotencyKey?: string | null): Promise<RunRow> {
    return this.creation.create(projectId, threadId, input, idempotencyKey);
  }

  /**
   * A new thread, with its messages in the order given, and a run on it: one transaction,
   * so a run that cannot be created (the input, the database) leaves no thread and no
   * message behind. With an idempotency key, a retry gets the first run.
   */
  createThreadAndRun(projectId: string, input: CreateThreadAndRunInput, idempotencyKey?: string | null): Promise<RunRow> {
    return this.creation.createThreadAndRun(projectId, input, idempotencyKey);
  }

  modify(projectId: string, threadId: string, runId: string, metadata: Metadata): Promise<RunRow> {
    return this.runWrites.inTurn(turnOf(projectId, runId), async () => {
      await this.core.require(projectId, threadId, runId);
      const run = await this.runWrites.inSlot(() => store.updateRunMetadata(this.core.deps.db, runId, metadata));
      if (!run) throw new NotFoundError('run', runId);
      return run;
    });
  }

  /**
   * queued or requires_action: cancelled at once. in_progress: cancelling, and the engine
   * ends it. Already cancelling: returned as it is. Terminal: INVALID_RUN_STATE.
   */
  cancel(projectId: string, threadId: string, runId: string): Promise<RunRow> {
    return this.runWrites.inTurn(turnOf(projectId, runId), () => this.cancelInTurn(projectId, threadId, runId));
  }

  private async cancelInTurn(projectId: string, threadId: string, runId: string): Promise<RunRow> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const run = await this.core.require(projectId, threadId, runId);
      const to = cancelMove(run.status);
      if (to === 'unchanged') return run;
      if (to === 'refused') throw new InvalidRunStateError(`Cannot cancel run with status '${run.status}'.`, run.status);
      const moved = await this.runWrites.inSlot(() => this.core.transition(runId, to, {}, { from: [run.status] }));
      if (moved) return moved;
    }
    throw new Error(`cancel of ${runId} kept losing races`);
  }

  /** Hands the run its tool outputs; with an idempotency key, a retry gets the run as it is. */
  submitToolOutputs(
    projectId: string,
    threadId: string,
    runId: string,
    outputs: ToolOutput[],
    idempotencyKey?: string | null,
  ): Promise<RunRow> {
    const request = idempotentRequest(projectId, idempotencyKey, 'submitToolOutputs', { threadId, runId, outputs });
    return once(
      this.core.deps.db,
      request,
      () =>
        this.runWrites.inTurn(turnOf(projectId, runId), () => this.submitToolOutputsInTurn(projectId, threadId, runId, outputs, request)),
      (id) => this.get(projectId, threadId, id),
    );
  }

  private async submitToolOutputsInTurn(
    projectId: string,
    threadId: string,
    runId: string,
    outputs: ToolOutput[],
    request: IdempotentRequest | undefined,
  ): Promise<RunRow> {
    const run = await this.core.require(projectId, threadId, runId);
    if (run.status !== 'requires_action' || !run.requiredAction) {
      throw new InvalidRunStateError(`Runs in status '${run.status}' do not accept tool outputs.`, run.status);
    }
    const calls = run.requiredAction.submitToolOutputs.toolCalls;
    checkToolOutputs(calls, outputs);
    const byId = new Map(outputs.map((o) => [o.toolCallId, o.output]));
    const now = this.core.deps.clock();
    const result = await this.runWrites.inSlot(() =>
      this.core.commit(async (tx, items) => {
        // The version guard makes this apply to exactly the action that was validated.
        const moved = await store.transitionRun(tx, runId, 'queued', now, {}, { version: run.version });
        if (!moved) return undefined;
        const step = await store.findOpenToolCallsStep(tx, runId);
        if (step && step.stepDetails.type === 'tool_calls') {
          await store.completeRunStep(tx, step.id, now, {
            type: 'tool_calls',
            toolCalls: step.stepDetails.toolCalls.map((c) => ({
              ...c,
              function: { ...c.function, output: byId.get(c.id) ?? c.function.output },
            })),
          });
          items.push(
            ...(await store.insertItemEvents(
              tx,
              moved.run,
              moved.run.version - 1,
              [{ kind: 'step', itemId: step.id, change: 'completed' }],
              now,
            )),
          );
        }
        if (request) await recordKey(tx, request, runId, now);
        return moved;
      }),
    );
    if (!result) {
      // Something else (a cancel, the expiry sweeper) changed the run first.
      const now = await this.core.require(projectId, threadId, runId);
      throw new InvalidRunStateError(`Runs in status '${now.status}' do not accept tool outputs.`, now.status);
    }
    return result.run;
  }

  /**
   * Pages of steps of many runs at once (a batch loader's call), one promise per key, each
   * settling on its own. First pages (no cursor, the common case) cost one statement per
   * distinct order and size, whatever the number of runs; a page after or before a cursor
   * (which names a step of one run) is read on its own.
   */
  stepPages(keys: readonly StepPageKey[]): Promise<Page<RunStepRow>>[] {
    const { db } = this.core.deps;
    const groups = new Map<string, FirstPages>();
    const reads = keys.map((key) => {
      const args = { ...key, order: key.order ?? 'asc' };
      if (key.after != null || key.before != null || key.last != null) return () => store.pageRunSteps(db, key.runId, args);
      const size = key.first ?? DEFAULT_PAGE_SIZE;
      const name = `${args.order}:${size}`;
      const group = groups.get(name) ?? { order: args.order, size, runIds: [] };
      groups.set(name, group);
      group.runIds.push(key.runId);
      const plan = planKeysetPage(args, 'step');
      return async () => {
        // Read on first use, once every key is known: one statement for all the group's runs.
        group.rows ??= store.firstStepsOfRuns(db, group.runIds, group.order, size + 1);
        return plan.page((await group.rows).get(key.runId) ?? []);
      };
    });
    return reads.map((read) => read());
  }

  /**
   * A page of the run's steps as the Assistants API lists them (object ids as cursors,
   * newest first by default); NOT_FOUND when that thread of the project has no such run.
   */
  async listSteps(projectId: string, threadId: string, runId: string, args: ListArgs = {}): Promise<ListPage<RunStepRow>> {
    return readList(args, 'step', async (pageArgs) => {
      await this.core.require(projectId, threadId, runId);
      return store.pageRunSteps(this.core.deps.db, runId, pageArgs);
    });
  }

  /** The step, or undefined when that thread's run (in that project) has no such step. One statement. */
  getStep(projectId: string, threadId: string, runId: string, stepId: string): Promise<RunStepRow | undefined> {
    return store.findRunStepInProject(this.core.deps.db, projectId, threadId, runId, stepId);
  }

  /** Those of these steps whose run is in this project (a node lookup), in no particular order. */
  stepsInProject(projectId: string, stepIds: readonly string[]): Promise<RunStepRow[]> {
    return store.findRunStepsInProject(this.core.deps.db, projectId, stepIds);
  }
}

/** The turn a client's write to a run waits for (project names hold no ':'). */
function turnOf(projectId: string, runId: string): string {
  return `${projectId}:${runId}`;
}

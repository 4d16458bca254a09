/**
 * What clients may do with runs (the GraphQL resolvers, and any other face of the API):
 * read them, page them, create, modify, cancel, and hand them tool outputs. Each use case
 * opens its own transaction and applies the lifecycle through the run store.
 */
import { currentTraceparent } from '../observability/tracing.js';
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
import { batched } from '../db/batches.js';
import { isItemSpecificError, isUniqueViolation } from '../db/errors.js';
import { rowWrites, type RowWrites } from '../db/row-writes.js';
import type { AssistantRow, RunRow, RunStepRow } from '../db/schema.js';
import { findAssistant } from '../assistants/assistant-service.js';
import {
  BadUserInputError,
  InvalidRunStateError,
  ModelNotAvailableError,
  NotFoundError,
  ThreadHasActiveRunError,
} from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import type { Metadata, ToolOutput } from '../domain/run.js';
import { cancelMove, type RunStatus } from '../domain/run-lifecycle.js';
import { idempotentRequest, once, recordKey, type IdempotentRequest } from '../idempotency/idempotency.js';
import { findActiveRunId, insertThread, newMessage } from '../threads/thread-service.js';
import { MAX_EVENTS_PER_COMMIT, type Moved, type RunCore } from './core.js';
import { checkToolOutputs, type CreateRunInput, type CreateThreadAndRunInput, type RunSettings } from './run-input.js';
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

/** A run not made because its assistant changed since it was read: its transaction rolls back. */
class AssistantChanged extends Error {}

/** The answer to a run that must go in the next batch (see writeCreations). */
const AGAIN = Symbol('again');

/** How many times a use case re-reads and retries when a concurrent change beat it. */
const MAX_ATTEMPTS = 5;

export class RunCommands {
  /**
   * A client's writes to a run (cancel, modify, submitToolOutputs): each use case in its
   * run's turn, its write on a slot (see db/row-writes). The turn is the project's and
   * the run's: a request naming another project's run never waits behind that run's
   * writes, nor learns from their outcome that it exists; it reads NOT_FOUND.
   */
  private readonly runWrites: RowWrites;

  constructor(private readonly core: RunCore) {
    this.runWrites = rowWrites(core.deps.runWrites ?? { slots: 5, slotWaitMs: 1000 });
  }

  /** The run, or undefined when it does not exist in that thread of that project. */
  get(projectId: string, threadId: string, runId: string): Promise<RunRow | undefined> {
    return this.core.get(projectId, threadId, runId);
  }

  /** The run in that project, whatever its thread. */
  async getInProject(projectId: string, runId: string): Promise<RunRow | undefined> {
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
  async create(projectId: string, threadId: string, input: CreateRunInput, idempotencyKey?: string | null): Promise<RunRow> {
    const request = idempotentRequest(projectId, idempotencyKey, 'createRun', { threadId, input });
    return once(
      this.core.deps.db,
      request,
      () => this.createOnce(projectId, threadId, input, request),
      (id) => this.getInProject(projectId, id),
    );
  }

  private async createOnce(
    projectId: string,
    threadId: string,
    input: CreateRunInput,
    request: IdempotentRequest | undefined,
  ): Promise<RunRow> {
    for (let attempt = 1; ; attempt++) {
      const settings = await this.runSettings(projectId, input);
      if (settings.invalid) {
        // Reported in this order, as clients have always seen: a missing thread, a missing
        // assistant, a thread busy with another run, then what is wrong with the input.
        await this.core.requireThread(projectId, threadId);
        const active = settings.assistant && (await findActiveRunId(this.core.deps.db, threadId));
        if (active) throw new ThreadHasActiveRunError(threadId, active);
        throw settings.invalid;
      }
      let created: Moved | undefined | typeof AGAIN;
      try {
        const run = this.newRun(projectId, threadId, this.core.deps.clock(), input, settings, request);
        // A second run asked for on one thread in one batch waits for the next batch.
        do {
          created = await this.creations(run);
        } while (created === AGAIN);
      } catch (error) {
        // The partial unique index keeps a thread to one active run.
        if (isUniqueViolation(error, 'runs_one_active_per_thread')) throw await this.busy(threadId);
        throw error;
      }
      if (created) return created.run;
      // Not created: the thread is not there, the assistant changed since it was read (made
      // again from it as it is now), or the thread has an active run.
      await this.core.requireThread(projectId, threadId);
      if (await this.assistantChanged(projectId, settings.assistant)) {
        if (attempt < MAX_ATTEMPTS) continue;
        throw new Error(`createRun on ${threadId} kept finding its assistant changed`);
      }
      throw await this.busy(threadId);
    }
  }

  /** Whether the assistant is no longer as it was read (modified or deleted since); its next read is fresh. */
  private async assistantChanged(projectId: string, read: AssistantRow): Promise<boolean> {
    const now = await findAssistant(this.core.deps.db, projectId, read.id, { fresh: true });
    return now?.revision !== read.revision;
  }

  /**
   * What `input` asks for: its assistant (read outside any write, as this process last
   * read it: createRun's statement checks it is still current), the model and tools, and
   * whether a provider serves that model and the tools hold the function the input forces.
   */
  private async runSettings(projectId: string, input: CreateRunInput): Promise<RunSettings> {
    const assistant = await findAssistant(this.core.deps.db, projectId, input.assistantId);
    if (!assistant) return { invalid: new NotFoundError('assistant', input.assistantId), assistant };
    const model = input.model ?? assistant.model;
    const tools = input.tools ?? assistant.tools ?? [];
    const forced = input.toolChoice && 'function' in input.toolChoice ? input.toolChoice.function.name : null;
    const { modelSupported } = this.core.deps;
    if (modelSupported && !modelSupported(model)) {
      return { invalid: new ModelNotAvailableError(model, 'input.model'), assistant };
    }
    if (forced && !tools.some((t) => t.function.name === forced)) {
      const invalid = new BadUserInputError(`Invalid input: input.toolChoice.function.name: '${forced}' is not one of the run's tools.`, {
        fields: ['input.toolChoice.function.name'],
      });
      return { invalid, assistant };
    }
    return { invalid: undefined, assistant, model, tools };
  }

  /** The run `input` asks for on the thread, queued now, with the Assistants API's defaults. */
  private newRun(
    projectId: string,
    threadId: string,
    now: number,
    input: CreateRunInput,
    { assistant, model, tools }: RunSettings & { invalid: undefined },
    request: IdempotentRequest | undefined,
  ): store.NewRun {
    return {
      id: newId('run'),
      projectId,
      threadId,
      assistantId: assistant.id,
      assistantRevision: assistant.revision,
      createdAt: now,
      expiresAt: now + this.core.deps.runExpiresAfterSeconds,
      model,
      instructions: input.instructions ?? assistant.instructions ?? '',
      additionalInstructions: input.additionalInstructions ?? null,
      tools,
      metadata: input.metadata ?? {},
      // The assistant's, as the Assistants API: a run's own setting overrides it (the assistant's default: 1, 1, auto).
      temperature: input.temperature ?? assistant.temperature,
      topP: input.topP ?? assistant.topP,
      maxPromptTokens: input.maxPromptTokens ?? null,
      maxCompletionTokens: input.maxCompletionTokens ?? null,
      truncationStrategy: input.truncationStrategy ?? { type: 'auto', lastMessages: null },
      toolChoice: input.toolChoice ?? { mode: 'auto' },
      parallelToolCalls: input.parallelToolCalls ?? true,
      responseFormat: input.responseFormat ?? assistant.responseFormat,
      messages: (input.additionalMessages ?? []).map((m) => {
        const { id, role, content, metadata } = newMessage(threadId, now, m);
        return { id, role, content, metadata };
      }),
      idempotency: request ? { key: request.key, fingerprint: request.fingerprint } : null,
      // The worker's span of the run continues the creating request's trace.
      traceparent: currentTraceparent(),
    };
  }

  /**
   * A new thread, with its messages in the order given, and a run on it: one transaction,
   * so a run that cannot be created (the input, the database) leaves no thread and no
   * message behind. The run's QUEUED event is announced as the transaction commits, as
   * createRun's is. With an idempotency key, a retry gets the first run.
   */
  async createThreadAndRun(projectId: string, input: CreateThreadAndRunInput, idempotencyKey?: string | null): Promise<RunRow> {
    const request = idempotentRequest(projectId, idempotencyKey, 'createThreadAndRun', input);
    return once(
      this.core.deps.db,
      request,
      () => this.createThreadAndRunOnce(projectId, input, request),
      (id) => this.getInProject(projectId, id),
    );
  }

  private async createThreadAndRunOnce(
    projectId: string,
    { thread, ...input }: CreateThreadAndRunInput,
    request: IdempotentRequest | undefined,
  ): Promise<RunRow> {
    for (let attempt = 1; ; attempt++) {
      const settings = await this.runSettings(projectId, input);
      if (settings.invalid) throw settings.invalid;
      const now = this.core.deps.clock();
      const created = await this.core
        .commit(async (tx) => {
          const { id: threadId } = await insertThread(tx, projectId, now, thread ?? {});
          // The key goes in through recordKey: the statement would record it as createRun's.
          const run = this.newRun(projectId, threadId, now, input, settings, undefined);
          // First: a concurrent request with the same key waits here, then fails and reads ours.
          if (request) await recordKey(tx, request, run.id, now);
          const [created] = await store.createRunsIn(tx, [run]);
          // A thread of this transaction has no other run: only an assistant changed since
          // it was read stops the run, and then nothing of the transaction stays.
          if (!created) throw new AssistantChanged();
          return created;
        })
        .catch((error: unknown) => {
          if (error instanceof AssistantChanged && attempt < MAX_ATTEMPTS) return undefined;
          throw error;
        });
      if (created) return created.run;
      await this.assistantChanged(projectId, settings.assistant);
    }
  }

  /** The error for a thread found busy: which run it is only completes the message. */
  private async busy(threadId: string): Promise<ThreadHasActiveRunError> {
    // A failed read must not hide the code.
    const active = await findActiveRunId(this.core.deps.db, threadId).catch(() => undefined);
    return new ThreadHasActiveRunError(threadId, active ?? null);
  }

  /**
   * Runs created meanwhile go to the database together: one statement, one commit, one
   * notification (group commit, see db/batches). A run on a thread busy with another is
   * left out by the statement; a batch that fails on one run's data (two runs racing on
   * one thread from two processes, caught by the unique index) is written again run by
   * run, so that run fails alone.
   */
  private readonly creations = batched<store.NewRun, Moved | undefined | typeof AGAIN>((batch) => this.writeCreations(batch), {
    // Every event of a batch travels in one notification.
    maxBatch: MAX_EVENTS_PER_COMMIT,
    retryAlone: isItemSpecificError,
  });

  /**
   * One statement: one run per thread, in thread id order (see createRunsStatement). A
   * second run on a thread is answered AGAIN and goes in the next batch, where it finds
   * the first one active. (Never a second statement here: were it to fail after the first
   * committed, the batch would be written again and its created runs reported as refused.)
   */
  private async writeCreations(batch: store.NewRun[]): Promise<(Moved | undefined | typeof AGAIN)[]> {
    const firsts = new Map<string, store.NewRun>();
    for (const run of batch) if (!firsts.has(run.threadId)) firsts.set(run.threadId, run);
    const now = [...firsts.values()].sort((a, b) => (a.threadId < b.threadId ? -1 : a.threadId > b.threadId ? 1 : 0));
    const moved = await this.core.statements.createRuns(now);
    const created = new Map(moved.map((m) => [m.run.id, m]));
    return batch.map((run) => (firsts.get(run.threadId) === run ? created.get(run.id) : AGAIN));
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

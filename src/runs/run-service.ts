/**
 * The run use cases: what the GraphQL resolvers and the engine call. Each opens
 * its own transaction, applies the lifecycle through the run store, and publishes the
 * committed transitions.
 */
import type { Db, Tx } from '../db/client.js';
import { planKeysetPage, type Page, type PageArgs } from '../db/keyset.js';
import { batched, batchedReads } from '../db/batches.js';
import { rowWrites, type RowWriteOptions, type RowWrites } from '../db/row-writes.js';
import { runSteps, type MessageRow, type RunRow, type RunStepRow } from '../db/schema.js';
import {
  BadUserInputError,
  InvalidRunStateError,
  NotFoundError,
  ThreadHasActiveRunError,
} from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import type {
  Metadata,
  ResponseFormat,
  RunStatusEvent,
  RunUsage,
  Tool,
  ToolCall,
  ToolChoice,
  ToolOutput,
  TruncationStrategy,
} from '../domain/run.js';
import { cancelMove, type RunStatus } from '../domain/run-lifecycle.js';
import type { Announcer } from './announcer.js';
import { isItemSpecificError, isUniqueViolation } from '../db/errors.js';
import { findActiveRunId, newMessage, threadExists } from '../threads/thread-service.js';
import { findAssistant } from '../assistants/assistant-service.js';
import { idempotentRequest, once, recordKey, type IdempotentRequest } from '../idempotency/idempotency.js';
import * as store from './sql/index.js';

export interface CreateRunInput {
  assistantId: string;
  model?: string | null;
  instructions?: string | null;
  additionalInstructions?: string | null;
  additionalMessages?: { role: 'user' | 'assistant'; content: string; metadata?: Metadata | null }[] | null;
  tools?: Tool[] | null;
  metadata?: Metadata | null;
  temperature?: number | null;
  topP?: number | null;
  maxPromptTokens?: number | null;
  maxCompletionTokens?: number | null;
  truncationStrategy?: TruncationStrategy | null;
  toolChoice?: ToolChoice | null;
  parallelToolCalls?: boolean | null;
  responseFormat?: ResponseFormat | null;
}

export interface RunServiceDeps {
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

/** A run's first page of steps: which run, which order, how many. */
export interface FirstStepsKey {
  runId: string;
  order: 'asc' | 'desc';
  size: number;
}

/** What a transition hands back: the run as it left it, and its event. */
type Moved = { run: RunRow; event: RunStatusEvent };

/** A model's answer, as the engine commits it. */
type Answer = { text: string; usage: RunUsage; truncated: boolean };
type Finish = { run: RunRow; leaseToken: string; answer: Answer; totalUsage: RunUsage };

/**
 * Events one transaction may announce: their lines must fit one notification (at most
 * 7,900 bytes; a line is up to ~120 bytes).
 */
const MAX_EVENTS_PER_COMMIT = 50;

/** The most runs one claim takes. */
export const MAX_CLAIM = MAX_EVENTS_PER_COMMIT;

/** The answer to a run that must go in the next batch (see writeCreations). */
const AGAIN = Symbol('again');

/** How many times a use case re-reads and retries when a concurrent change beat it. */
const MAX_ATTEMPTS = 5;

export class RunService {
  /**
   * A client's writes to a run (cancel, modify, submitToolOutputs): each use case in its
   * run's turn, its write on a slot (see db/row-writes). The turn is the project's and
   * the run's: a request naming another project's run never waits behind that run's
   * writes, nor learns from their outcome that it exists; it reads NOT_FOUND.
   */
  private readonly runWrites: RowWrites;

  constructor(private readonly deps: RunServiceDeps) {
    this.runWrites = rowWrites(deps.runWrites ?? { slots: 5, slotWaitMs: 1000 });
  }

  /** The run, or undefined when it does not exist in that thread of that project. */
  async get(projectId: string, threadId: string, runId: string): Promise<RunRow | undefined> {
    const run = await store.findRunInProject(this.deps.db, projectId, runId);
    return run && run.threadId === threadId ? run : undefined;
  }

  /** The run in that project, whatever its thread. */
  async getInProject(projectId: string, runId: string): Promise<RunRow | undefined> {
    return store.findRunInProject(this.deps.db, projectId, runId);
  }

  /** Any project's run: for the engine, which serves them all. */
  async getById(runId: string): Promise<RunRow | undefined> {
    return store.findRun(this.deps.db, runId);
  }

  async list(
    projectId: string,
    threadId: string,
    args: PageArgs,
    statuses?: readonly RunStatus[] | null,
  ): Promise<Page<RunRow>> {
    await this.requireThread(projectId, threadId);
    return store.listRuns(this.deps.db, threadId, args, statuses);
  }

  /** A thread's runs when the thread is already known to be the caller's (a Thread's `runs` field). */
  async listOfThread(thread: { id: string }, args: PageArgs, statuses?: readonly RunStatus[] | null): Promise<Page<RunRow>> {
    return store.listRuns(this.deps.db, thread.id, args, statuses);
  }

  /** A new run; with an idempotency key, a retry gets the first one. */
  async create(projectId: string, threadId: string, input: CreateRunInput, idempotencyKey?: string | null): Promise<RunRow> {
    const request = idempotentRequest(projectId, idempotencyKey, 'createRun', { threadId, input });
    return once(
      this.deps.db,
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
    const { db, clock, runExpiresAfterSeconds } = this.deps;
    const now = clock();
    // Assistants never change once created: read outside the run's statement.
    const assistant = await findAssistant(db, projectId, input.assistantId);
    const model = input.model ?? assistant?.model;
    const tools = input.tools ?? assistant?.tools ?? [];
    const forced = input.toolChoice && 'function' in input.toolChoice ? input.toolChoice.function.name : null;
    const invalid = !assistant
      ? new NotFoundError('assistant', input.assistantId)
      : this.deps.modelSupported && !this.deps.modelSupported(model!)
        ? new BadUserInputError(
            `Invalid input: model: no model provider serves '${model}' (use 'scripted' or 'scripted-*', or configure OPENAI_BASE_URL / OPENAI_API_KEY).`,
            { fields: ['input.model'] },
          )
        : forced && !tools.some((t) => t.function.name === forced)
          ? new BadUserInputError(`Invalid input: input.toolChoice.function.name: '${forced}' is not one of the run's tools.`, {
              fields: ['input.toolChoice.function.name'],
            })
          : undefined;
    if (invalid) {
      // Reported in this order, as clients have always seen: a missing thread, a missing
      // assistant, a thread busy with another run, then what is wrong with the input.
      await this.requireThread(projectId, threadId);
      const active = assistant && (await findActiveRunId(db, threadId));
      if (active) throw new ThreadHasActiveRunError(threadId, active);
      throw invalid;
    }
    let created: Moved | undefined | typeof AGAIN;
    try {
      const run: store.NewRun = {
        id: newId('run'),
        projectId,
        threadId,
        assistantId: assistant!.id,
        createdAt: now,
        expiresAt: now + runExpiresAfterSeconds,
        model: model!,
        instructions: input.instructions ?? assistant!.instructions ?? '',
        additionalInstructions: input.additionalInstructions ?? null,
        tools,
        metadata: input.metadata ?? {},
        // As the Assistants API: "If not set, defaults to 1."
        temperature: input.temperature ?? 1,
        topP: input.topP ?? 1,
        maxPromptTokens: input.maxPromptTokens ?? null,
        maxCompletionTokens: input.maxCompletionTokens ?? null,
        truncationStrategy: input.truncationStrategy ?? { type: 'auto', lastMessages: null },
        toolChoice: input.toolChoice ?? { mode: 'auto' },
        parallelToolCalls: input.parallelToolCalls ?? true,
        responseFormat: input.responseFormat ?? { type: 'auto' },
        messages: (input.additionalMessages ?? []).map((m) => {
          const { id, role, content, metadata } = newMessage(threadId, now, m);
          return { id, role, content, metadata };
        }),
        idempotency: request ? { key: request.key, fingerprint: request.fingerprint } : null,
      };
      // A second run asked for on one thread in one batch waits for the next batch.
      do {
        created = await this.creations(run);
      } while (created === AGAIN);
    } catch (error) {
      // The partial unique index keeps a thread to one active run.
      if (isUniqueViolation(error, 'runs_one_active_per_thread')) throw await this.busy(threadId);
      throw error;
    }
    if (!created) {
      // Not created: the thread is not there, or it has an active run.
      await this.requireThread(projectId, threadId);
      throw await this.busy(threadId);
    }
    return created.run;
  }

  /** The error for a thread found busy: which run it is only completes the message. */
  private async busy(threadId: string): Promise<ThreadHasActiveRunError> {
    // A failed read must not hide the code.
    const active = await findActiveRunId(this.deps.db, threadId).catch(() => undefined);
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
    const moved = await this.statements.createRuns(now);
    const created = new Map(moved.map((m) => [m.run.id, m]));
    return batch.map((run) => (firsts.get(run.threadId) === run ? created.get(run.id) : AGAIN));
  }

  /**
   * The statements the hot paths run, each built once on first use (prepared), each
   * announcing its own events as it commits.
   */
  private get statements() {
    if (!this.built) {
      const { db, announcer } = this.deps;
      const announce: store.AnnounceEvents = (events) => announcer.inStatement(events);
      // Each statement announces its events as it commits; then the announcer may relay.
      const announced =
        <A extends unknown[], R>(statement: (...args: A) => Promise<R>) =>
        async (...args: A): Promise<R> => {
          const result = await statement(...args);
          announcer.committed();
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

  modify(projectId: string, threadId: string, runId: string, metadata: Metadata): Promise<RunRow> {
    return this.runWrites.inTurn(turnOf(projectId, runId), async () => {
      await this.require(projectId, threadId, runId);
      const run = await this.runWrites.inSlot(() => store.updateRunMetadata(this.deps.db, runId, metadata));
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
      const run = await this.require(projectId, threadId, runId);
      const to = cancelMove(run.status);
      if (to === 'unchanged') return run;
      if (to === 'refused') throw new InvalidRunStateError(`Cannot cancel run with status '${run.status}'.`, run.status);
      const moved = await this.runWrites.inSlot(() => this.transition(runId, to, {}, { from: [run.status] }));
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
      this.deps.db,
      request,
      () =>
        this.runWrites.inTurn(turnOf(projectId, runId), () =>
          this.submitToolOutputsInTurn(projectId, threadId, runId, outputs, request),
        ),
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
    const run = await this.require(projectId, threadId, runId);
    if (run.status !== 'requires_action' || !run.requiredAction) {
      throw new InvalidRunStateError(
        `Runs in status '${run.status}' do not accept tool outputs.`,
        run.status,
      );
    }
    const calls = run.requiredAction.submitToolOutputs.toolCalls;
    checkToolOutputs(calls, outputs);
    const byId = new Map(outputs.map((o) => [o.toolCallId, o.output]));
    const now = this.deps.clock();
    const result = await this.runWrites.inSlot(() =>
      this.commit(async (tx) => {
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
        }
        if (request) await recordKey(tx, request, runId, now);
        return moved;
      }),
    );
    if (!result) {
      // Something else (a cancel, the expiry sweeper) changed the run first.
      const now = await this.require(projectId, threadId, runId);
      throw new InvalidRunStateError(`Runs in status '${now.status}' do not accept tool outputs.`, now.status);
    }
    return result.run;
  }

  /**
   * Puts an in_progress run into requires_action with these calls, and opens the
   * TOOL_CALLS step that will receive the outputs. The engine's entry point.
   */
  async requireAction(
    runId: string,
    toolCalls: ToolCall[],
    options: { usage?: RunUsage; leaseToken?: string } = {},
  ): Promise<RunRow | undefined> {
    const { usage, leaseToken } = options;
    const now = this.deps.clock();
    const result = await this.commit(async (tx) => {
      const moved = await store.transitionRun(
        tx,
        runId,
        'requires_action',
        now,
        { requiredAction: { type: 'submit_tool_outputs', submitToolOutputs: { toolCalls } } },
        leaseToken === undefined ? {} : { leaseToken },
      );
      if (!moved) return undefined;
      await store.insertRunStep(tx, {
        id: newId('step'),
        runId,
        threadId: moved.run.threadId,
        assistantId: moved.run.assistantId,
        createdAt: now,
        type: 'tool_calls',
        status: 'in_progress',
        stepDetails: {
          type: 'tool_calls',
          toolCalls: toolCalls.map((c) => ({ ...c, function: { ...c.function, output: null } })),
        },
        usage: usage ?? null,
      });
      return moved;
    });
    return result?.run;
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
      const batch = await this.commit(async (tx) => {
        const batch = await store.transitionRuns(tx, to, now, moves.slice(i, i + MAX_EVENTS_PER_COMMIT));
        await store.closeOpenSteps(tx, batch.map((m) => m.run.id), to, now);
        return batch;
      });
      moved.push(...batch.map((m) => m.run));
    }
    return moved;
  }

  /**
   * The engine's claim: queued runs to in_progress under this worker's lease, projects
   * taking turns from the one this process served last (see store.claimStatement).
   */
  async claim(workerId: string, limit: number, leaseSeconds: number): Promise<RunRow[]> {
    const after = this.servedLast;
    const claimed = await this.statements.claim(workerId, Math.min(limit, MAX_CLAIM), after, this.deps.clock(), leaseSeconds);
    this.servedLast = lastServed(after, claimed.map((c) => c.run.projectId)) ?? after;
    return claimed.map((c) => c.run);
  }

  /** Where the next claim's round of projects starts. */
  private servedLast = '';

  /** Runs whose worker's lease lapsed, now claimed by this worker (no transition). */
  async takeOver(workerId: string, limit: number, leaseSeconds: number): Promise<RunRow[]> {
    return store.takeOverLapsedRuns(this.deps.db, workerId, limit, leaseSeconds);
  }

  /**
   * Runs held in this worker's name that it is not executing (a claim that committed while
   * its connection died), claimed again under new tokens (no transition).
   */
  async reclaimOwn(workerId: string, executing: readonly string[], leaseSeconds: number): Promise<RunRow[]> {
    return store.reclaimOwnRuns(this.deps.db, workerId, executing, leaseSeconds);
  }

  async renewLease(runId: string, leaseToken: string, leaseSeconds: number): Promise<RunRow | undefined> {
    return store.renewLease(this.deps.db, runId, leaseToken, leaseSeconds);
  }

  async releaseLease(runId: string, leaseToken: string): Promise<void> {
    await store.releaseLease(this.deps.db, runId, leaseToken);
  }

  /**
   * The sweeper: expires up to `limit` active runs past their expiresAt (and their open
   * steps), in batches; each run's move is guarded by its due time, so any number of
   * processes may sweep at once and a run that moved on meanwhile is left alone.
   */
  async expireDue(limit = 100): Promise<number> {
    const now = this.deps.clock();
    const due = await store.findDueRunIds(this.deps.db, now, limit);
    return (await this.transitionMany('expired', due.map((runId) => ({ runId, guard: { dueBy: now } })))).length;
  }

  /**
   * The model answered: the assistant message, its step and the run's end commit together,
   * or not at all (when the run is no longer in_progress or cancelling, e.g. expired), so
   * a repeated model call never records a second message. Answers that arrive together
   * are committed together (one statement and one notification for the completed ones,
   * another for those cut short at maxCompletionTokens: see db/batches).
   */
  finishWithMessage(run: RunRow, leaseToken: string, answer: Answer, totalUsage: RunUsage): Promise<RunRow | undefined> {
    return this.finishes({ run, leaseToken, answer, totalUsage });
  }

  private readonly finishes = batched<Finish, RunRow | undefined>((batch) => this.writeFinishes(batch), {
    // Every event of a batch travels in one notification.
    maxBatch: MAX_EVENTS_PER_COMMIT,
    retryAlone: isItemSpecificError,
  });

  private async writeFinishes(batch: Finish[]): Promise<(RunRow | undefined)[]> {
    const now = this.deps.clock();
    const moved: Moved[] = [];
    for (const to of ['completed', 'incomplete'] as const) {
      const group = batch.filter((f) => (f.answer.truncated ? 'incomplete' : 'completed') === to);
      if (group.length === 0) continue;
      const finished = await this.statements.finish[to](
        group.map((f) => ({
          move: {
            runId: f.run.id,
            data: {
              usage: f.totalUsage,
              ...(f.answer.truncated ? { incompleteDetails: { reason: 'max_completion_tokens' as const } } : {}),
            },
            guard: { leaseToken: f.leaseToken },
          },
          messageId: newId('msg'),
          stepId: newId('step'),
          text: f.answer.text,
          usage: f.answer.usage,
        })),
        now,
      );
      moved.push(...finished);
    }
    const byRun = new Map(moved.map((m) => [m.run.id, m.run]));
    return batch.map((f) => byRun.get(f.run.id));
  }

  /** All of a run's steps, oldest first (the engine's view; batched with other runs'). */
  steps(runId: string): Promise<RunStepRow[]> {
    return this.stepReads(runId);
  }

  private readonly stepReads = batchedReads((runIds) => store.stepsOfRuns(this.deps.db, runIds));

  async pageSteps(runId: string, args: PageArgs) {
    return store.pageRunSteps(this.deps.db, runId, args);
  }

  /**
   * The first page of steps of many runs at once (a batch loader's call): one query per
   * distinct (order, size), whatever the number of runs.
   */
  async firstStepPages(keys: readonly FirstStepsKey[]): Promise<Page<RunStepRow>[]> {
    const groups = new Map<string, FirstStepsKey[]>();
    for (const key of keys) {
      const group = `${key.order}:${key.size}`;
      (groups.get(group) ?? groups.set(group, []).get(group)!).push(key);
    }
    const pages = new Map<FirstStepsKey, Page<RunStepRow>>();
    for (const group of groups.values()) {
      const { order, size } = group[0]!;
      const plan = planKeysetPage(runSteps.id, { first: size, order }, 'step');
      const rows = await store.firstStepsOfRuns(this.deps.db, group.map((k) => k.runId), order, plan.limit);
      for (const key of group) pages.set(key, plan.page(rows.get(key.runId) ?? []));
    }
    return keys.map((key) => pages.get(key)!);
  }

  /** The step, or undefined when that thread's run (in that project) has no such step. */
  async getStep(projectId: string, threadId: string, runId: string, stepId: string) {
    const [run, step] = await Promise.all([
      this.get(projectId, threadId, runId),
      store.findRunStep(this.deps.db, stepId),
    ]);
    return run && step && step.runId === run.id ? step : undefined;
  }

  /** A thread's messages, oldest first (the engine's prompt; batched with other threads'). */
  threadMessages(threadId: string): Promise<MessageRow[]> {
    return this.messageReads(threadId);
  }

  private readonly messageReads = batchedReads((threadIds) => store.messagesOfThreads(this.deps.db, threadIds));

  /** The event that left the run in its current state. */
  async currentEvent(run: RunRow): Promise<RunStatusEvent> {
    return (await store.findRunEvent(this.deps.db, run.id, run.version)) ?? store.eventOf(run, run.createdAt);
  }

  /** Where the thread's event history ends now ({0, 0} before its first run). */
  async lastThreadPosition(threadId: string): Promise<{ threadSeq: number; version: number }> {
    return store.lastThreadPosition(this.deps.db, threadId);
  }

  async threadEventsAfter(threadId: string, after: { threadSeq: number; version: number }, limit?: number) {
    return store.threadEventsAfter(this.deps.db, threadId, after, limit);
  }

  /**
   * The run for an event's `run` field. Every subscriber of an event asks at once, so
   * the reads of one (run, version) are shared while they are in flight.
   */
  runForEvent(runId: string, version: number): Promise<RunRow | undefined> {
    const key = `${runId}:${version}`;
    let pending = this.eventReads.get(key);
    if (!pending) {
      pending = store.findRun(this.deps.db, runId).finally(() => this.eventReads.delete(key));
      this.eventReads.set(key, pending);
    }
    return pending;
  }

  private readonly eventReads = new Map<string, Promise<RunRow | undefined>>();

  async eventsAfter(runId: string, afterVersion: number) {
    return store.runEventsAfter(this.deps.db, runId, afterVersion);
  }


  /**
   * Runs `work` in a transaction and announces the transitions it made as it commits:
   * the one place events leave a transaction, so there is one notification per
   * transaction however many runs it moved.
   */
  private async commit<T extends Moved | Moved[] | undefined>(work: (tx: Tx) => Promise<T>): Promise<T> {
    let events: RunStatusEvent[] = [];
    const result = await this.deps.db.transaction(async (tx) => {
      const result = await work(tx);
      events = result === undefined ? [] : Array.isArray(result) ? result.map((r) => r.event) : [result.event];
      await this.deps.announcer.inTransaction(tx, events);
      return result;
    });
    this.deps.announcer.committed();
    return result;
  }

  private async require(projectId: string, threadId: string, runId: string): Promise<RunRow> {
    const run = await this.get(projectId, threadId, runId);
    if (!run) {
      await this.requireThread(projectId, threadId);
      throw new NotFoundError('run', runId);
    }
    return run;
  }

  private async requireThread(projectId: string, threadId: string): Promise<void> {
    if (!(await threadExists(this.deps.db, projectId, threadId))) throw new NotFoundError('thread', threadId);
  }
}

/**
 * The project a claim served last, given the projects of the runs it took: the claim
 * takes one run per project per round, visiting them in id order after `after` and
 * wrapping around, so the last run taken is in the last round (of the projects that got
 * the most runs), from the one visited last.
 */
export function lastServed(after: string, projects: readonly string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const p of projects) counts.set(p, (counts.get(p) ?? 0) + 1);
  const rounds = Math.max(0, ...counts.values());
  const visitOrder = (p: string) => (p > after ? 0 : 1);
  let last: string | undefined;
  for (const [p, n] of counts) {
    if (n !== rounds) continue;
    if (last === undefined || visitOrder(p) > visitOrder(last) || (visitOrder(p) === visitOrder(last) && p > last)) last = p;
  }
  return last;
}

/** The turn a client's write to a run waits for (project names hold no ':'). */
function turnOf(projectId: string, runId: string): string {
  return `${projectId}:${runId}`;
}

/** Exactly one output per pending call: no missing, unknown or repeated id. */
function checkToolOutputs(calls: ToolCall[], outputs: ToolOutput[]): void {
  const pending = new Set(calls.map((c) => c.id));
  const seen = new Set<string>();
  const repeated = new Set<string>();
  const unknown: string[] = [];
  for (const { toolCallId } of outputs) {
    if (!pending.has(toolCallId)) unknown.push(toolCallId);
    else if (seen.has(toolCallId)) repeated.add(toolCallId);
    seen.add(toolCallId);
  }
  const missing = [...pending].filter((id) => !seen.has(id));
  const problems = [
    missing.length ? `missing outputs for tool calls ${missing.join(', ')}` : '',
    unknown.length ? `unknown tool call ids ${unknown.join(', ')}` : '',
    repeated.size ? `repeated tool call ids ${[...repeated].join(', ')}` : '',
  ].filter(Boolean);
  if (problems.length) {
    throw new BadUserInputError(`Invalid toolOutputs: ${problems.join('; ')}.`, {
      argument: 'toolOutputs',
      missing,
      unknown,
      repeated: [...repeated],
    });
  }
}

/**
 * How runs are created: createRun (batched with the runs created meanwhile, one statement
 * per batch) and createThreadAndRun (thread, messages and run in one transaction), each
 * with the Assistants API's defaults, its assistant read as this process last read it
 * and checked still current by the write, and idempotent with a key.
 */
import { currentTraceparent } from '../observability/tracing.js';
import { findAssistant } from '../assistants/assistant-service.js';
import { batched } from '../db/batches.js';
import { isItemSpecificError, isUniqueViolation } from '../db/errors.js';
import type { AssistantRow, RunRow } from '../db/schema.js';
import { BadUserInputError, ModelNotAvailableError, NotFoundError, ThreadHasActiveRunError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { idempotentRequest, once, recordKey, type IdempotentRequest } from '../idempotency/idempotency.js';
import { findActiveRunId, insertThread, newMessage } from '../threads/thread-service.js';
import { MAX_ATTEMPTS, MAX_EVENTS_PER_COMMIT, type Moved, type RunCore } from './core.js';
import type { CreateRunInput, CreateThreadAndRunInput, RunSettings } from './run-input.js';
import * as store from './sql/index.js';

/** A run not made because its assistant changed since it was read: its transaction rolls back. */
class AssistantChanged extends Error {}

/** The answer to a run that must go in the next batch (see writeCreations). */
const AGAIN = Symbol('again');

export class RunCreation {
  constructor(private readonly core: RunCore) {}

  /** A new run; with an idempotency key, a retry gets the first one. */
  async create(projectId: string, threadId: string, input: CreateRunInput, idempotencyKey?: string | null): Promise<RunRow> {
    const request = idempotentRequest(projectId, idempotencyKey, 'createRun', { threadId, input });
    return once(
      this.core.deps.db,
      request,
      () => this.createOnce(projectId, threadId, input, request),
      (id) => store.findRunInProject(this.core.deps.db, projectId, id),
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
      (id) => store.findRunInProject(this.core.deps.db, projectId, id),
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
}

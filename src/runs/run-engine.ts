/**
 * What the engine does with runs: claims them under a lease, renews and gives up its
 * claims, takes over runs whose worker died, expires runs, and commits what the model
 * answered (a message, tool calls, a failure), guarded by the claim's lease token.
 */
import { batched, batchedReads } from '../db/batches.js';
import { isItemSpecificError } from '../db/errors.js';
import type { MessageRow, RunRow, RunStepRow } from '../db/schema.js';
import { newId } from '../domain/ids.js';
import type { RunUsage, ToolCall } from '../domain/run.js';
import type { RunStatus } from '../domain/run-lifecycle.js';
import { MAX_EVENTS_PER_COMMIT, type Moved, type RunCore } from './core.js';
import { MessageWriter, type MessageStream, type StreamedMessage } from './message-streams.js';
import * as store from './sql/index.js';
import { runsExpired } from '../observability/metrics.js';

/** The most runs one claim takes. */
export const MAX_CLAIM = MAX_EVENTS_PER_COMMIT;

/** A model's answer, as the engine commits it. */
type Answer = { text: string; usage: RunUsage; truncated: boolean };
type Finish = { run: RunRow; leaseToken: string; answer: Answer; totalUsage: RunUsage; message: StreamedMessage | undefined };

export class RunEngine {
  constructor(private readonly core: RunCore) {
    this.messageWriter = new MessageWriter(core, core.deps.announcer);
  }

  /** Any project's run: for the engine, which serves them all. */
  async getById(runId: string): Promise<RunRow | undefined> {
    return store.findRun(this.core.deps.db, runId);
  }

  /**
   * Puts an in_progress run into requires_action with these calls, and opens the
   * TOOL_CALLS step that will receive the outputs. The engine's entry point.
   */
  async requireAction(
    runId: string,
    toolCalls: ToolCall[],
    options: { usage?: RunUsage; leaseToken?: string; message?: StreamedMessage } = {},
  ): Promise<RunRow | undefined> {
    const { usage, leaseToken, message } = options;
    const now = this.core.deps.clock();
    const result = await this.core.commit(async (tx, items) => {
      const moved = await store.transitionRun(
        tx,
        runId,
        'requires_action',
        now,
        { requiredAction: { type: 'submit_tool_outputs', submitToolOutputs: { toolCalls } } },
        leaseToken === undefined ? {} : { leaseToken },
      );
      if (!moved) return undefined;
      // Text the model wrote before it chose to call tools is a message of its own, done.
      if (message?.started) items.push(...(await store.endStreamedMessage(tx, moved.run, message, now)));
      const stepId = newId('step');
      await store.insertRunStep(tx, {
        id: stepId,
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
      items.push(
        ...(await store.insertItemEvents(
          tx,
          moved.run,
          moved.run.version - 1,
          [{ kind: 'step', itemId: stepId, change: 'in_progress' }],
          now,
        )),
      );
      return moved;
    });
    return result?.run;
  }

  /**
   * Any legal status change, with its data; ends the run's open steps when the run ends.
   * Returns undefined when the guard or the transition table refused it.
   */
  transition(
    runId: string,
    to: RunStatus,
    data: store.TransitionData = {},
    guard: store.TransitionGuard = {},
  ): Promise<RunRow | undefined> {
    return this.core.transition(runId, to, data, guard);
  }

  /** {@link transition} for many runs going to the same status, each with its own data and guard. */
  transitionMany(to: RunStatus, moves: readonly store.RunMove[]): Promise<RunRow[]> {
    return this.core.transitionMany(to, moves);
  }

  /**
   * The engine's claim: queued runs to in_progress under this worker's lease, projects
   * taking turns from the one this process served last (see store.claimStatement).
   */
  async claim(workerId: string, limit: number, leaseSeconds: number): Promise<RunRow[]> {
    const after = this.servedLast;
    const claimed = await this.core.statements.claim(workerId, Math.min(limit, MAX_CLAIM), after, this.core.deps.clock(), leaseSeconds);
    this.servedLast =
      lastServed(
        after,
        claimed.map((c) => c.run.projectId),
      ) ?? after;
    return claimed.map((c) => c.run);
  }

  /** Where the next claim's round of projects starts. */
  private servedLast = '';

  /** Runs whose worker's lease lapsed, now claimed by this worker (no transition). */
  async takeOver(workerId: string, limit: number, leaseSeconds: number): Promise<RunRow[]> {
    return this.abandoning(await store.takeOverLapsedRuns(this.core.deps.db, workerId, limit, leaseSeconds));
  }

  /**
   * Runs held in this worker's name that it is not executing (a claim that committed while
   * its connection died), claimed again under new tokens (no transition).
   */
  async reclaimOwn(workerId: string, executing: readonly string[], leaseSeconds: number): Promise<RunRow[]> {
    return this.abandoning(await store.reclaimOwnRuns(this.core.deps.db, workerId, executing, leaseSeconds));
  }

  /**
   * Runs claimed anew without a transition: a message their earlier execution was writing
   * is ended (incomplete) before the new execution writes its own.
   */
  private async abandoning(taken: RunRow[]): Promise<RunRow[]> {
    if (taken.length === 0) return taken;
    const now = this.core.deps.clock();
    await this.core.commit(async (tx, items) => {
      items.push(
        ...(await store.endAbandonedMessages(
          tx,
          taken.map((r) => r.id),
          now,
        )),
      );
      return undefined;
    });
    return taken;
  }

  async renewLease(runId: string, leaseToken: string, leaseSeconds: number): Promise<RunRow | undefined> {
    return store.renewLease(this.core.deps.db, runId, leaseToken, leaseSeconds);
  }

  async releaseLease(runId: string, leaseToken: string): Promise<void> {
    await store.releaseLease(this.core.deps.db, runId, leaseToken);
  }

  /**
   * The sweeper: expires up to `limit` active runs past their expiresAt (and their open
   * steps), in batches; each run's move is guarded by its due time, so any number of
   * processes may sweep at once and a run that moved on meanwhile is left alone.
   */
  async expireDue(limit = 100): Promise<number> {
    const now = this.core.deps.clock();
    const due = await store.findDueRunIds(this.core.deps.db, now, limit);
    const expired = (
      await this.core.transitionMany(
        'expired',
        due.map((runId) => ({ runId, guard: { dueBy: now } })),
      )
    ).length;
    runsExpired.inc(expired);
    return expired;
  }

  /**
   * The model answered: the assistant message, its step and the run's end commit together,
   * or not at all (when the run is no longer in_progress or cancelling, e.g. expired), so
   * a repeated model call never records a second message. Answers that arrive together
   * are committed together (one statement and one notification for the completed ones,
   * another for those cut short at maxCompletionTokens: see db/batches).
   */
  finishWithMessage(
    run: RunRow,
    leaseToken: string,
    answer: Answer,
    totalUsage: RunUsage,
    message?: StreamedMessage,
  ): Promise<RunRow | undefined> {
    return this.finishes({ run, leaseToken, answer, totalUsage, message });
  }

  /**
   * The run's answer as the model writes it: its message opens at the first piece and
   * grows as pieces come (see message-streams). Close it before the finish.
   */
  streamMessage(run: RunRow, leaseToken: string): MessageStream {
    return this.messageWriter.open(run, leaseToken);
  }

  private readonly messageWriter: MessageWriter;

  private readonly finishes = batched<Finish, RunRow | undefined>((batch) => this.writeFinishes(batch), {
    // Every event of a batch travels in one notification.
    maxBatch: MAX_EVENTS_PER_COMMIT,
    retryAlone: isItemSpecificError,
  });

  private async writeFinishes(batch: Finish[]): Promise<(RunRow | undefined)[]> {
    const now = this.core.deps.clock();
    const moved: Moved[] = [];
    for (const to of ['completed', 'incomplete'] as const) {
      const group = batch.filter((f) => (f.answer.truncated ? 'incomplete' : 'completed') === to);
      if (group.length === 0) continue;
      const finished = await this.core.statements.finish[to](
        group.map((f) => ({
          move: {
            runId: f.run.id,
            data: {
              usage: f.totalUsage,
              ...(f.answer.truncated ? { incompleteDetails: { reason: 'max_completion_tokens' as const } } : {}),
            },
            guard: { leaseToken: f.leaseToken },
          },
          messageId: f.message?.messageId ?? newId('msg'),
          stepId: f.message?.stepId ?? newId('step'),
          started: f.message?.started ?? false,
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

  /** Active runs by status and model (the metrics' gauge). */
  activeRunCounts(): Promise<{ status: string; model: string; count: number }[]> {
    return store.activeRunCounts(this.core.deps.db);
  }

  /** The queue's depth and the createdAt of its oldest run (the metrics' gauges). */
  queueStats(): Promise<{ depth: number; oldest: number | null }> {
    return store.queueStats(this.core.deps.db);
  }

  /** All of a run's steps, oldest first (the engine's view; batched with other runs'). */
  steps(runId: string): Promise<RunStepRow[]> {
    return this.stepReads(runId);
  }

  private readonly stepReads = batchedReads((runIds) => store.stepsOfRuns(this.core.deps.db, runIds));

  /** A thread's messages, oldest first (the engine's prompt; batched with other threads'). */
  threadMessages(threadId: string): Promise<MessageRow[]> {
    return this.messageReads(threadId);
  }

  private readonly messageReads = batchedReads((threadIds) => store.messagesOfThreads(this.core.deps.db, threadIds));
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

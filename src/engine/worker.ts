/**
 * The worker: claims queued runs (the runs table is the queue), executes each with its
 * model provider under a lease it renews, and commits the outcome through the run
 * service, guarded by the claim's lease token so that a worker that lost its claim can
 * record nothing. It also takes over runs whose worker died, and sweeps expired runs.
 *
 * Wake-ups: every committed transition reaches every process (see realtime/transport);
 * a queued run wakes the worker, a run moved on by someone else aborts its model call.
 * A slow poll backs this up.
 */
import { randomUUID } from 'node:crypto';
import type { RunRow, RunStepRow } from '../db/schema.js';
import type { RunStatusEvent, RunUsage } from '../domain/run.js';
import { createLogger, type Logger } from '../log.js';
import { MAX_CLAIM, type RunService } from '../runs/run-service.js';
import { ModelError, type ModelProvider, type PromptMessage } from './providers/provider.js';
import { promptTokens } from './tokens.js';

export interface WorkerOptions {
  runs: RunService;
  providers: ModelProvider[];
  /** Runs executed at once by this process. @default 8 */
  concurrency?: number;
  /** How long a claim holds without renewal; renewed every third of it. @default 30 */
  leaseSeconds?: number;
  /** Fallback poll for work, lapsed leases and expired runs. @default 1000 */
  pollMs?: number;
  /** On stop, how long in-flight runs may take to finish before their claims are released. @default 10000 */
  shutdownGraceMs?: number;
  logger?: Logger;
}

interface InFlight {
  run: RunRow;
  leaseToken: string;
  abort: AbortController;
  done: Promise<void>;
}

export class Worker {
  readonly id = `worker_${randomUUID()}`;
  private readonly inFlight = new Map<string, InFlight>();
  private running = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private claiming: Promise<void> | undefined;
  private wakeAgain = false;
  /**
   * Whether queued runs may be waiting that this worker has not tried to claim: a run was
   * queued, or the last claim took all it asked for. A run that ends frees a slot, and
   * only then is a claim worth its round trips. (Queued runs that a claim skipped because
   * another transaction held them are found by the next queued event or poll.)
   */
  private backlog = true;
  private readonly concurrency: number;
  private readonly leaseSeconds: number;
  private readonly pollMs: number;
  private readonly shutdownGraceMs: number;
  private readonly log: Logger;

  constructor(private readonly options: WorkerOptions) {
    this.concurrency = options.concurrency ?? 8;
    this.leaseSeconds = options.leaseSeconds ?? 30;
    this.pollMs = options.pollMs ?? 1000;
    this.shutdownGraceMs = options.shutdownGraceMs ?? 10_000;
    this.log = (options.logger ?? createLogger()).child({ workerId: this.id });
  }

  start(): void {
    this.running = true;
    // The slow path keeps its own clock: wake-ups under load must not postpone it.
    this.pollTimer = setInterval(() => {
      if (!this.polling) this.polling = this.poll().finally(() => (this.polling = undefined));
    }, this.pollMs);
    this.wake();
  }

  /**
   * Committed transitions, from any process: queued work wakes the worker; a run it is
   * executing that someone else moved on (a cancel, expiry) has its model call aborted.
   */
  onEvents(events: readonly RunStatusEvent[]): void {
    let queued = false;
    for (const e of events) {
      if (e.status === 'queued') queued = true;
      else if (e.status !== 'in_progress') {
        const flight = this.inFlight.get(e.runId);
        // Only a change made after this claim counts: a late event of an earlier turn does not.
        if (flight && e.version > flight.run.version) flight.abort.abort(new Error('stopped'));
      }
    }
    if (queued) {
      this.backlog = true;
      this.wake();
    }
  }

  /**
   * Stops claiming; gives in-flight runs the grace period to finish, then releases their
   * claims (another worker takes them over at once) and abandons them.
   */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.pollTimer);
    await this.polling;
    await this.claiming;
    const all = [...this.inFlight.values()];
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.shutdownGraceMs)));
    const outcome = await Promise.race([Promise.allSettled(all.map((f) => f.done)), graceOver]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      for (const flight of this.inFlight.values()) {
        flight.abort.abort(new Error('shutdown'));
        await this.options.runs.releaseLease(flight.run.id, flight.leaseToken).catch(() => {});
      }
    }
  }

  /** There may be work: claim now (coalesced with a claim under way). */
  wake(): void {
    if (!this.running) return;
    if (this.claiming) {
      this.wakeAgain = true;
      return;
    }
    this.claiming = this.claimLoop().finally(() => {
      this.claiming = undefined;
    });
  }

  /**
   * The slow path, once per poll: expire due runs, take over runs whose worker's lease
   * lapsed (neither is latency-critical), then look for work.
   */
  private async poll(): Promise<void> {
    const { runs } = this.options;
    try {
      await runs.expireDue();
      const free = this.concurrency - this.inFlight.size;
      if (this.running && free > 0) {
        const taken = await runs.takeOver(this.id, free, this.leaseSeconds);
        // Stopping meanwhile: give them straight back rather than start them.
        for (const run of taken) {
          if (this.running) this.begin(run);
          else await runs.releaseLease(run.id, run.leaseToken!);
        }
      }
    } catch (error) {
      this.log.error({ err: error }, 'sweeping runs failed; retrying at the next poll');
    }
    this.wake();
  }

  private async claimLoop(): Promise<void> {
    const { runs } = this.options;
    do {
      this.wakeAgain = false;
      const free = this.concurrency - this.inFlight.size;
      if (free <= 0) return;
      // One claim takes at most MAX_CLAIM runs, whatever the free slots.
      const asked = Math.min(free, MAX_CLAIM);
      let claimed: RunRow[] = [];
      try {
        claimed = await runs.claim(this.id, asked, this.leaseSeconds);
      } catch (error) {
        this.log.error({ err: error }, 'claiming runs failed; retrying at the next poll');
        return;
      }
      for (const run of claimed) this.begin(run);
      this.backlog = claimed.length === asked;
      if (this.backlog) this.wakeAgain = true; // there may be more
    } while (this.wakeAgain && this.running);
  }

  private begin(run: RunRow): void {
    const leaseToken = run.leaseToken;
    if (!leaseToken) throw new Error(`claimed run ${run.id} has no lease token`);
    // Our own lapsed claim, taken back: the old execution can no longer write (its token
    // is stale) and will end by itself; let it, and leave this run to the next poll.
    if (this.inFlight.has(run.id)) {
      void this.options.runs.releaseLease(run.id, leaseToken).catch(() => {});
      return;
    }
    const abort = new AbortController();
    const renewal = setInterval(() => {
      this.options.runs.renewLease(run.id, leaseToken, this.leaseSeconds).then(
        (current) => {
          // Lost the claim, or the run was stopped and the notice went astray.
          if (!current || current.status === 'cancelling') abort.abort(new Error('stopped'));
        },
        (error) => this.log.error({ err: error, runId: run.id }, 'renewing a lease failed'),
      );
    }, (this.leaseSeconds * 1000) / 3);
    const done = this.execute(run, leaseToken, abort.signal)
      .catch((error) => this.log.error({ err: error, runId: run.id }, 'run execution failed unexpectedly'))
      .finally(() => {
        clearInterval(renewal);
        if (this.inFlight.get(run.id)?.leaseToken === leaseToken) this.inFlight.delete(run.id);
        if (this.backlog) this.wake();
      });
    this.inFlight.set(run.id, { run, leaseToken, abort, done });
  }

  /** One model call, and the transition its outcome calls for. */
  private async execute(run: RunRow, leaseToken: string, signal: AbortSignal): Promise<void> {
    const { runs, providers } = this.options;
    const guard = { leaseToken };
    const steps = await runs.steps(run.id);
    const earlierUsage = sumUsage(steps.map((s) => s.usage));

    // Taken over while cancelling: the cancel was never finished. Finish it.
    if (run.status === 'cancelling') {
      await runs.transition(run.id, 'cancelled', { usage: earlierUsage }, guard);
      return;
    }
    const provider = providers.find((p) => p.handles(run.model));
    if (!provider) {
      await runs.transition(
        run.id,
        'failed',
        { lastError: { code: 'invalid_prompt', message: `No provider serves model '${run.model}'.` } },
        guard,
      );
      return;
    }
    const messages = await this.prompt(run, steps);
    if (run.maxPromptTokens != null && (await promptTokens(messages)) > run.maxPromptTokens) {
      await runs.transition(run.id, 'incomplete', { incompleteDetails: { reason: 'max_prompt_tokens' }, usage: earlierUsage }, guard);
      return;
    }

    try {
      const result = await provider.complete(
        {
          model: run.model,
          messages,
          tools: run.tools,
          toolChoice: run.toolChoice,
          parallelToolCalls: run.parallelToolCalls,
          responseFormat: run.responseFormat,
          temperature: run.temperature,
          topP: run.topP,
          maxCompletionTokens: run.maxCompletionTokens,
        },
        signal,
      );
      const total = sumUsage([earlierUsage, result.usage]);
      if (result.type === 'message') {
        // A model that answered before the cancel landed wins (cancelling -> completed).
        await runs.finishWithMessage(run, leaseToken, result, total);
      } else if (!(await runs.requireAction(run.id, result.toolCalls, { usage: result.usage, leaseToken }))) {
        // Cancelled while the model chose its calls: the cancel wins.
        await runs.transition(run.id, 'cancelled', { usage: total }, { ...guard, from: ['cancelling'] });
      }
    } catch (error) {
      if (signal.aborted) {
        // Cancelled (or stopped by expiry / shutdown, where this guard simply fails).
        await runs.transition(run.id, 'cancelled', { usage: earlierUsage }, { ...guard, from: ['cancelling'] });
        return;
      }
      const lastError =
        error instanceof ModelError
          ? { code: error.code, message: error.message }
          : { code: 'server_error' as const, message: 'The model call failed.' };
      if (!(error instanceof ModelError)) this.log.error({ err: error, runId: run.id }, 'model call failed');
      await runs.transition(run.id, 'failed', { lastError, usage: earlierUsage }, guard);
    }
  }

  /** Instructions, the thread (shaped by the truncation strategy), then this run's tool calls. */
  private async prompt(run: RunRow, steps: RunStepRow[]): Promise<PromptMessage[]> {
    let thread = (await this.options.runs.threadMessages(run.threadId)).filter((m) => m.runId !== run.id);
    const strategy = run.truncationStrategy;
    if (strategy?.type === 'last_messages' && strategy.lastMessages) thread = thread.slice(-strategy.lastMessages);
    const instructions = [run.instructions, run.additionalInstructions].filter(Boolean).join('\n\n');
    const messages: PromptMessage[] = instructions ? [{ role: 'system', content: instructions }] : [];
    messages.push(...thread.map((m) => ({ role: m.role, content: m.content })));
    for (const step of steps) {
      if (step.stepDetails.type !== 'tool_calls') continue;
      const calls = step.stepDetails.toolCalls;
      messages.push({
        role: 'assistant',
        content: '',
        toolCalls: calls.map(({ id, type, function: f }) => ({ id, type, function: { name: f.name, arguments: f.arguments } })),
      });
      for (const call of calls) {
        if (call.function.output != null) {
          messages.push({ role: 'tool', content: call.function.output, toolCallId: call.id, name: call.function.name });
        }
      }
    }
    return messages;
  }
}

function sumUsage(usages: (RunUsage | null | undefined)[]): RunUsage {
  const total = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
  for (const u of usages) {
    if (!u) continue;
    total.promptTokens += u.promptTokens;
    total.completionTokens += u.completionTokens;
    total.totalTokens += u.totalTokens;
  }
  return total;
}

/**
 * The worker: claims queued runs (the runs table is the queue), executes each with its
 * model provider under a renewed lease, and commits the outcome through the run service.
 * Wakes at once on a local queued event and polls slowly as a fallback.
 *
 * Not yet here (issue #3 continues): cross-process wake by LISTEN/NOTIFY, takeover of
 * runs whose lease lapsed, the expiry sweeper, the openai provider.
 */
import { randomUUID } from 'node:crypto';
import type { RunRow } from '../db/schema.js';
import type { RunUsage } from '../domain/run.js';
import type { RunEventBus } from '../realtime/event-bus.js';
import type { RunService } from '../runs/run-service.js';
import { ModelError, type ModelProvider, type PromptMessage } from './providers/provider.js';
import { promptTokens } from './providers/scripted.js';

export interface WorkerOptions {
  runs: RunService;
  bus: RunEventBus;
  providers: ModelProvider[];
  /** Runs executed at once by this process. @default 8 */
  concurrency?: number;
  /** How long a claim holds without renewal. @default 30 */
  leaseSeconds?: number;
  /** Fallback poll when no wake-up arrives. @default 1000 */
  pollMs?: number;
}

export class Worker {
  readonly id = `worker_${randomUUID()}`;
  private readonly inFlight = new Map<string, Promise<void>>();
  private running = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private claiming: Promise<void> | undefined;
  private wakeAgain = false;
  private readonly concurrency: number;
  private readonly leaseSeconds: number;
  private readonly pollMs: number;

  constructor(private readonly options: WorkerOptions) {
    this.concurrency = options.concurrency ?? 8;
    this.leaseSeconds = options.leaseSeconds ?? 30;
    this.pollMs = options.pollMs ?? 1000;
  }

  start(): void {
    this.running = true;
    this.wake();
  }

  /** Stops claiming and waits for the runs in flight to finish. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.pollTimer);
    await this.claiming;
    await Promise.allSettled(this.inFlight.values());
  }

  /** There may be queued work: claim now (coalesced with a claim under way). */
  wake(): void {
    if (!this.running) return;
    if (this.claiming) {
      this.wakeAgain = true;
      return;
    }
    this.claiming = this.claimLoop().finally(() => {
      this.claiming = undefined;
      if (this.running) {
        clearTimeout(this.pollTimer);
        this.pollTimer = setTimeout(() => this.wake(), this.pollMs);
      }
    });
  }

  private async claimLoop(): Promise<void> {
    do {
      this.wakeAgain = false;
      const free = this.concurrency - this.inFlight.size;
      if (free <= 0) return;
      let claimed: RunRow[] = [];
      try {
        claimed = await this.options.runs.claim(this.id, free, this.leaseSeconds);
      } catch (error) {
        console.error('claiming runs failed; retrying at the next poll', error);
        return;
      }
      for (const run of claimed) {
        const task = this.execute(run)
          .catch((error) => console.error(`run ${run.id} failed unexpectedly`, error))
          .finally(() => {
            this.inFlight.delete(run.id);
            this.wake();
          });
        this.inFlight.set(run.id, task);
      }
      if (claimed.length === free) this.wakeAgain = true; // there may be more
    } while (this.wakeAgain && this.running);
  }

  private async execute(run: RunRow): Promise<void> {
    const { runs, bus } = this.options;
    const abort = new AbortController();
    // A cancel made in this process aborts at once; the lease renewal sees the others.
    const cancels = bus.subscribe(`run:${run.id}`);
    void (async () => {
      try {
        for await (const { event } of cancels) if (event.status === 'cancelling') abort.abort(new Error('cancelled'));
      } catch {
        /* a lagging watcher only loses the fast path; the renewal still checks */
      }
    })();
    const renewal = setInterval(() => {
      void runs.renewLease(run.id, this.id, this.leaseSeconds).then((current) => {
        if (!current || current.status === 'cancelling') abort.abort(new Error('cancelled'));
      }, () => {});
    }, (this.leaseSeconds * 1000) / 3);

    try {
      await this.step(run, abort.signal);
    } finally {
      clearInterval(renewal);
      cancels.close();
    }
  }

  /** One model call, and the transition its outcome calls for. */
  private async step(run: RunRow, signal: AbortSignal): Promise<void> {
    const { runs, providers } = this.options;
    const provider = providers.find((p) => p.handles(run.model));
    if (!provider) {
      await runs.transition(run.id, 'failed', {
        lastError: { code: 'invalid_prompt', message: `No provider serves model '${run.model}'.` },
      });
      return;
    }
    const steps = await runs.steps(run.id);
    const earlierUsage = sumUsage(steps.map((s) => s.usage));
    const messages = await this.prompt(run, steps);

    if (run.maxPromptTokens != null && promptTokens(messages) > run.maxPromptTokens) {
      await runs.transition(run.id, 'incomplete', {
        incompleteDetails: { reason: 'max_prompt_tokens' },
        usage: earlierUsage,
      });
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
        await runs.finishWithMessage(run, result, total);
      } else if (!(await runs.requireAction(run.id, result.toolCalls, result.usage))) {
        // Cancelled while the model chose its calls: the cancel wins.
        await runs.transition(run.id, 'cancelled', { usage: total }, { from: ['cancelling'] });
      }
    } catch (error) {
      if (signal.aborted) {
        await runs.transition(run.id, 'cancelled', { usage: earlierUsage }, { from: ['cancelling'] });
        return;
      }
      const lastError =
        error instanceof ModelError
          ? { code: error.code, message: error.message }
          : { code: 'server_error' as const, message: 'The model call failed.' };
      if (!(error instanceof ModelError)) console.error(`model call for run ${run.id} failed`, error);
      await runs.transition(run.id, 'failed', { lastError, usage: earlierUsage });
    }
  }

  /** Instructions, the thread (shaped by the truncation strategy), then this run's tool calls. */
  private async prompt(run: RunRow, steps: Awaited<ReturnType<RunService['steps']>>): Promise<PromptMessage[]> {
    let thread = (await this.options.runs.threadMessages(run.threadId)).filter((m) => m.runId !== run.id);
    const strategy = run.truncationStrategy;
    if (strategy?.type === 'last_messages' && strategy.lastMessages) thread = thread.slice(-strategy.lastMessages);
    const instructions = [run.instructions, run.additionalInstructions].filter(Boolean).join('\n\n');
    const messages: PromptMessage[] = instructions ? [{ role: 'system', content: instructions }] : [];
    messages.push(...thread.map((m) => ({ role: m.role, content: m.content })));
    for (const step of steps) {
      if (step.stepDetails.type !== 'tool_calls') continue;
      const calls = step.stepDetails.toolCalls;
      messages.push({ role: 'assistant', content: '', toolCalls: calls.map(({ id, type, function: f }) => ({ id, type, function: { name: f.name, arguments: f.arguments } })) });
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

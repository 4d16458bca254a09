/**
 * One claimed run, executed: the prompt it makes, one model call, and the transition the
 * outcome calls for (the answer recorded, tool calls waited on, a failure, a cancel).
 * The worker decides which runs to execute and keeps their claims; this module decides
 * what executing one means. Every read and write goes through the worker's `untilServed`,
 * which waits out a database that cannot serve it while the claim holds, and every write
 * carries the claim's lease token, so a repeated or late write records nothing twice.
 */
import { isTransientDatabaseError } from '../db/errors.js';
import type { MessageRow, RunRow, RunStepRow } from '../db/schema.js';
import type { RunUsage } from '../domain/run.js';
import type { Logger } from '../log.js';
import { storableText } from '../domain/text.js';
import type { RunEngine, StreamedMessage } from '../runs/index.js';
import { ModelError, type ModelProvider, type ModelResult, type PromptMessage } from './providers/provider.js';
import { messageTokens } from './tokens.js';
import { fitPrompt } from './truncation.js';
import { observedModelCall } from '../observability/model-calls.js';

/** A run this process holds a claim on. */
export interface ClaimedRun {
  run: RunRow;
  leaseToken: string;
  /** Aborted when the run is cancelled, or the claim lost or given back. */
  abort: AbortController;
}

/** Runs a read or write until the database serves it, for as long as the claim holds. */
export type UntilServed = <T>(work: () => Promise<T>) => Promise<T>;

export class RunExecution {
  constructor(
    private readonly runs: RunEngine,
    private readonly providers: readonly ModelProvider[],
    private readonly log: Logger,
  ) {}

  /** One model call, and the transition its outcome calls for. */
  async execute(claimed: ClaimedRun, untilServed: UntilServed): Promise<void> {
    const { runs, providers } = this;
    const { run, leaseToken } = claimed;
    const signal = claimed.abort.signal;
    const guard = { leaseToken };
    const steps = await untilServed(() => runs.steps(run.id));
    const earlierUsage = sumUsage(steps.map((s) => s.usage));

    // Taken over while cancelling: the cancel was never finished. Finish it.
    if (run.status === 'cancelling') {
      await untilServed(() => runs.transition(run.id, 'cancelled', { usage: earlierUsage }, guard));
      return;
    }
    const provider = providers.find((p) => p.handles(run.model));
    if (!provider) {
      const lastError = { code: 'invalid_prompt' as const, message: `No provider serves model '${run.model}'.` };
      await untilServed(() => runs.transition(run.id, 'failed', { lastError }, guard));
      return;
    }
    // maxPromptTokens and maxCompletionTokens hold for the whole run: every call of a tool
    // loop spends from them, and a call gets what is left.
    const completionLeft = run.maxCompletionTokens == null ? null : run.maxCompletionTokens - earlierUsage.completionTokens;
    const promptLeft = run.maxPromptTokens == null ? null : run.maxPromptTokens - earlierUsage.promptTokens;
    const incomplete = (reason: 'max_prompt_tokens' | 'max_completion_tokens') =>
      untilServed(() => runs.transition(run.id, 'incomplete', { incompleteDetails: { reason }, usage: earlierUsage }, guard));
    if (completionLeft != null && completionLeft <= 0) {
      await incomplete('max_completion_tokens');
      return;
    }
    if (promptLeft != null && promptLeft <= 0) {
      await incomplete('max_prompt_tokens');
      return;
    }

    const thread = await untilServed(() => runs.threadMessages(run.threadId));
    const prompt = promptParts(run, thread, steps);
    let messages = prompt.messages;
    const window = provider.contextWindow ?? null;
    const budget = promptLeft == null ? window : window == null ? promptLeft : Math.min(promptLeft, window);
    if (budget != null) {
      const auto = run.truncationStrategy?.type !== 'last_messages';
      const fitted = fitPrompt(messages, await messageTokens(messages), budget, auto ? prompt.droppable : []);
      // What must stay does not fit the run's budget: the run ends here. (Over the context
      // window alone, the endpoint is asked anyway: it knows its model's window best.)
      if (promptLeft != null && fitted.tokens > promptLeft) {
        await incomplete('max_prompt_tokens');
        return;
      }
      messages = fitted.messages;
    }

    // The answer streams into its message as the model writes it.
    const stream = runs.streamMessage(run, leaseToken);
    let result: ModelResult;
    try {
      const call = () =>
        provider.complete(
          {
            model: run.model,
            messages,
            tools: run.tools,
            toolChoice: run.toolChoice,
            parallelToolCalls: run.parallelToolCalls,
            responseFormat: run.responseFormat,
            temperature: run.temperature,
            topP: run.topP,
            maxCompletionTokens: completionLeft,
          },
          signal,
          (piece) => stream.push(piece),
        );
      result = await observedModelCall(provider.name, run.model, signal, (e) => (e instanceof ModelError ? e.code : 'server_error'), call);
    } catch (error) {
      // What was written of the message stays, and ends incomplete with the run.
      await stream.close();
      if (signal.aborted) {
        // Cancelled (or stopped by expiry / shutdown, where this guard simply fails).
        await untilServed(() => runs.transition(run.id, 'cancelled', { usage: earlierUsage }, { ...guard, from: ['cancelling'] }));
        return;
      }
      const lastError =
        error instanceof ModelError
          ? { code: error.code, message: error.message }
          : { code: 'server_error' as const, message: 'The model call failed.' };
      if (!(error instanceof ModelError)) this.log.error({ err: error, runId: run.id }, 'model call failed');
      await untilServed(() => runs.transition(run.id, 'failed', { lastError, usage: earlierUsage }, guard));
      return;
    }
    // The finish writes the whole answer; tool calls end the message with the text it has.
    const message = await stream.close(result.type === 'message');
    if (result.type === 'message') result = { ...result, text: storableText(result.text) };

    // The model answered: from here on only the database stands between the answer and the run.
    const total = sumUsage([earlierUsage, result.usage]);
    try {
      await this.record(claimed, result, total, message, untilServed);
    } catch (error) {
      // Out of reach past the lease: the run is left to be taken over (see the worker).
      if (isTransientDatabaseError(error)) throw error;
      // Refused for good (the answer's own data): another attempt would fare no better.
      this.log.error({ err: error, runId: run.id }, 'recording the model answer failed');
      const lastError = { code: 'server_error' as const, message: 'The model answer could not be recorded.' };
      await untilServed(() => runs.transition(run.id, 'failed', { lastError, usage: total }, guard));
    }
  }

  /** Commits what the model answered: the run's end, or the tool calls it waits on. */
  private async record(
    claimed: ClaimedRun,
    result: ModelResult,
    total: RunUsage,
    message: StreamedMessage,
    untilServed: UntilServed,
  ): Promise<void> {
    const { runs } = this;
    const { run, leaseToken } = claimed;
    if (result.type === 'message') {
      // A model that answered before the cancel landed wins (cancelling -> completed).
      // Not moved: expired, or its claim lost, or an earlier attempt of this very write
      // committed before its connection died. There is nothing left to do either way.
      await untilServed(() => runs.finishWithMessage(run, leaseToken, result, total, message));
      return;
    }
    const waiting = await untilServed(() => runs.requireAction(run.id, result.toolCalls, { usage: result.usage, leaseToken, message }));
    if (waiting) return;
    // Not moved: cancelled while the model chose its calls (the cancel wins), or an earlier
    // attempt of this write committed before its connection died (the run waits for its
    // outputs: done). The run as it is now tells which.
    const now = await untilServed(() => runs.getById(run.id));
    if (now?.status === 'cancelling' && now.leaseToken === leaseToken) {
      await untilServed(() => runs.transition(run.id, 'cancelled', { usage: total }, { leaseToken, from: ['cancelling'] }));
    }
  }
}

/**
 * What the model is asked: the instructions, the thread (shaped by the run's truncation
 * strategy, without this run's own answers), then this run's tool calls and their outputs.
 */
export function promptOf(run: RunRow, threadMessages: readonly MessageRow[], steps: readonly RunStepRow[]): PromptMessage[] {
  return promptParts(run, threadMessages, steps).messages;
}

/**
 * {@link promptOf}, with which of its messages AUTO truncation may drop: the thread's,
 * but for its last user message.
 */
export function promptParts(
  run: RunRow,
  threadMessages: readonly MessageRow[],
  steps: readonly RunStepRow[],
): { messages: PromptMessage[]; droppable: boolean[] } {
  let thread = threadMessages.filter((m) => m.runId !== run.id);
  const strategy = run.truncationStrategy;
  if (strategy?.type === 'last_messages' && strategy.lastMessages) thread = thread.slice(-strategy.lastMessages);
  const instructions = [run.instructions, run.additionalInstructions].filter(Boolean).join('\n\n');
  const messages: PromptMessage[] = instructions ? [{ role: 'system', content: instructions }] : [];
  const droppable: boolean[] = messages.map(() => false);
  const lastUser = thread.findLastIndex((m) => m.role === 'user');
  for (const [i, m] of thread.entries()) {
    messages.push({ role: m.role, content: m.content });
    droppable.push(i !== lastUser);
  }
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
  while (droppable.length < messages.length) droppable.push(false);
  return { messages, droppable };
}

/** The usage of several model calls, added up. */
export function sumUsage(usages: (RunUsage | null | undefined)[]): RunUsage {
  const total = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
  for (const u of usages) {
    if (!u) continue;
    total.promptTokens += u.promptTokens;
    total.completionTokens += u.completionTokens;
    total.totalTokens += u.totalTokens;
  }
  return total;
}

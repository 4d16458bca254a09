/**
 * AUTO truncation: a prompt too long for its budget (what is left of the run's
 * maxPromptTokens, or the route's context window) loses its oldest thread messages until
 * it fits. The instructions, the thread's last user message and the run's own tool calls
 * and outputs always stay: without them the model would answer another question. Pure:
 * the tokens of each message are counted beforehand (tokens.ts, off the event loop when
 * the prompt is long), so fitting is a walk over numbers.
 */
import { MESSAGE_FRAMING, PROMPT_FRAMING } from './tokens.js';
import type { PromptMessage } from './providers/provider.js';

export interface FittedPrompt {
  messages: PromptMessage[];
  /** Tokens of the prompt returned, framing included (as tokens.promptTokens counts). */
  tokens: number;
  /** Whether it is within the budget (it may not be, when what must stay does not fit). */
  fits: boolean;
  /** How many messages were dropped. */
  dropped: number;
}

/**
 * `messages` within `budget` tokens: the oldest of those `droppable` allows go first, one
 * by one, until the rest fit. `counts[i]` is the tokens of `messages[i]`'s content.
 */
export function fitPrompt(
  messages: readonly PromptMessage[],
  counts: readonly number[],
  budget: number,
  droppable: readonly boolean[],
): FittedPrompt {
  let tokens = PROMPT_FRAMING + counts.reduce((sum, n) => sum + n + MESSAGE_FRAMING, 0);
  const drop = new Set<number>();
  for (let i = 0; i < messages.length && tokens > budget; i++) {
    if (!droppable[i]) continue;
    drop.add(i);
    tokens -= (counts[i] ?? 0) + MESSAGE_FRAMING;
  }
  return {
    messages: drop.size === 0 ? [...messages] : messages.filter((_, i) => !drop.has(i)),
    tokens,
    fits: tokens <= budget,
    dropped: drop.size,
  };
}

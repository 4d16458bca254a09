/**
 * Token counting (o200k_base, through gpt-tokenizer) that no input can make slow.
 *
 * gpt-tokenizer merges the bytes of each piece (a word, a run of punctuation or of
 * spaces) in time that grows with the square of the piece's length: one 64,000-character
 * word of random CJK takes 25 s, while 64,000 characters of prose take 5 ms. So a piece
 * longer than LONG_PIECE (256, token-counting.ts) is encoded in chunks of that length:
 * the cost of any text is then linear in its length (a few µs per character at worst:
 * random CJK, new to gpt-tokenizer's cache), the count exact for every text without such
 * a piece, and close (a few per thousand above) for the rest. Texts and prompts over
 * {@link INLINE_CHARS} are counted on a pool of worker threads, so that the event loop
 * never waits on one.
 *
 * Text that looks like a special token (`<|endoftext|>`) counts as the plain text it is,
 * as in a model's input.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { Cut, TokenPieces } from './token-counting.js';

export type { Cut, TokenPieces };

type TokenCounting = typeof import('./token-counting.js');
let counting: Promise<TokenCounting> | undefined;

/**
 * The counting functions (token-counting.ts), loaded on first use: gpt-tokenizer's tables
 * take about 20 MB of heap and half a second to load, which a gateway never needs. A
 * worker loads them as it starts, so that its first run does not wait for them.
 */
export function loadTokenCounting(): Promise<TokenCounting> {
  return (counting ??= import('./token-counting.js'));
}

/**
 * Texts (or whole prompts) up to this many characters are counted where they are asked
 * for: at worst about 15 ms of work (pieces of just under LONG_PIECE random CJK, none of
 * them in gpt-tokenizer's cache), well under a millisecond for prose. Longer ones go to
 * the pool.
 */
export const INLINE_CHARS = 2048;

/** A long prompt's messages go to the pool in tasks of about this many characters. */
const POOL_TASK_CHARS = 256_000;

let pool: Piscina | undefined;

function tokenPool(): Piscina {
  if (!pool) {
    // From the TypeScript sources (tsx, vitest) the thread needs a loader; the build's is plain JavaScript.
    const fromSources = import.meta.url.endsWith('.ts');
    pool = new Piscina({
      filename: new URL(fromSources ? './tokens-thread.dev.mjs' : './tokens-thread.js', import.meta.url).href,
      // Started when first needed, gone when idle: most deployments never see a long text.
      minThreads: 0,
      maxThreads: Math.max(1, Math.min(4, availableParallelism() - 1)),
      idleTimeout: 30_000,
      // Counting yields the CPU to the event loops of the process and its neighbours.
      niceIncrement: 5,
    });
  }
  return pool;
}

/** Tokens of a text, off the event loop when the text is long. */
export async function countTokens(text: string): Promise<number> {
  if (text.length <= INLINE_CHARS) return (await loadTokenCounting()).countTokensNow(text);
  return tokenPool().run(text, { name: 'count' }) as Promise<number>;
}

/**
 * The text cut at `limit` tokens (none: whole), with its token count, off the event loop
 * when the text is long.
 */
export async function cutAtTokens(text: string, limit: number | null): Promise<Cut> {
  if (text.length <= INLINE_CHARS) return (await loadTokenCounting()).cutAtTokensNow(text, limit);
  return tokenPool().run({ text, limit }, { name: 'cut' }) as Promise<Cut>;
}

/**
 * The text cut at `limit` tokens (none: whole) and the pieces a model streams it in, off
 * the event loop when the text is long. Its text and tokens are those of {@link cutAtTokens}.
 */
export async function tokenPieces(text: string, limit: number | null): Promise<TokenPieces> {
  if (text.length <= INLINE_CHARS) return (await loadTokenCounting()).tokenPiecesNow(text, limit);
  return tokenPool().run({ text, limit }, { name: 'pieces' }) as Promise<TokenPieces>;
}

/** Tokens a chat prompt spends on framing: a few for the prompt, a few per message, as OpenAI counts. */
export const PROMPT_FRAMING = 3;
export const MESSAGE_FRAMING = 4;

/** Tokens of a chat prompt: contents plus a few per message for the framing, as OpenAI counts. */
export async function promptTokens(messages: readonly { content: string }[]): Promise<number> {
  const framing = PROMPT_FRAMING + MESSAGE_FRAMING * messages.length;
  const length = messages.reduce((sum, m) => sum + m.content.length, 0);
  if (length <= INLINE_CHARS) {
    const { countTokensNow } = await loadTokenCounting();
    return messages.reduce((sum, m) => sum + countTokensNow(m.content), framing);
  }
  const counts = await Promise.all(poolTasks(messages).map((texts) => tokenPool().run(texts, { name: 'countAll' }) as Promise<number>));
  return counts.reduce((sum, n) => sum + n, framing);
}

/**
 * Tokens of each message's content (no framing), in order: what truncation weighs. Counted
 * as {@link promptTokens} counts, on the pool once the prompt is long.
 */
export async function messageTokens(messages: readonly { content: string }[]): Promise<number[]> {
  const length = messages.reduce((sum, m) => sum + m.content.length, 0);
  if (length <= INLINE_CHARS) {
    const { countTokensNow } = await loadTokenCounting();
    return messages.map((m) => countTokensNow(m.content));
  }
  const counts = await Promise.all(poolTasks(messages).map((texts) => tokenPool().run(texts, { name: 'countEach' }) as Promise<number[]>));
  return counts.flat();
}

/**
 * A long prompt's contents in tasks of about POOL_TASK_CHARS, in order: many short messages
 * add up as surely as one long one, and the pool's threads share a long prompt.
 */
function poolTasks(messages: readonly { content: string }[]): string[][] {
  const tasks: string[][] = [];
  let size = 0;
  for (const { content } of messages) {
    let task = tasks.at(-1);
    if (!task || size + content.length > POOL_TASK_CHARS) {
      tasks.push((task = []));
      size = 0;
    }
    task.push(content);
    size += content.length;
  }
  return tasks;
}

/** Stops the pool's threads (they also stop by themselves when idle). */
export async function closeTokenPool(): Promise<void> {
  const closing = pool;
  pool = undefined;
  await closing?.destroy();
}

/**
 * Token counting (o200k_base, through gpt-tokenizer) that no input can make slow.
 *
 * gpt-tokenizer merges the bytes of each piece (a word, a run of punctuation or of
 * spaces) in time that grows with the square of the piece's length: one 64,000-character
 * word of random CJK takes 25 s, while 64,000 characters of prose take 5 ms. So a piece
 * longer than {@link LONG_PIECE} is encoded in chunks of that length: the cost of any
 * text is then linear in its length (a few µs per character at worst: random CJK, new to
 * gpt-tokenizer's cache), the count exact for every text without such a piece, and close
 * (a few per thousand above) for the rest. Texts and prompts over {@link INLINE_CHARS}
 * are counted on a pool of worker threads, so that the event loop never waits on one.
 *
 * Text that looks like a special token (`<|endoftext|>`) counts as the plain text it is,
 * as in a model's input.
 */
import { availableParallelism } from 'node:os';
import { countTokens as countPiecewise, decode, decodeGenerator, encode } from 'gpt-tokenizer';
import { decoder as sharedDecoder } from 'gpt-tokenizer/BytePairEncodingCore';
import { O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';
import { Piscina } from 'piscina';

/** Pieces up to this many UTF-16 code units are encoded whole, exactly; longer ones in chunks of it. */
export const LONG_PIECE = 256;

/**
 * Texts (or whole prompts) up to this many characters are counted where they are asked
 * for: at worst about 15 ms of work (pieces of just under {@link LONG_PIECE} random CJK,
 * none of them in gpt-tokenizer's cache), well under a millisecond for prose. Longer ones
 * go to the pool.
 */
export const INLINE_CHARS = 2048;

/** A long prompt's messages go to the pool in tasks of about this many characters. */
const POOL_TASK_CHARS = 256_000;

const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/** The pieces gpt-tokenizer splits a text into (its own pattern). */
const PIECES = new RegExp(O200K_TOKEN_SPLIT_REGEX.source, 'gu');

/**
 * Whether a text may hold a piece longer than LONG_PIECE. Every piece is, but for at
 * most 4 code units (a leading character, a contraction such as `'ll`), a run of one of
 * three classes: letters and marks; punctuation, symbols and line breaks; white space.
 * Each alternative starts only where its run starts (the lookbehind), so the test stays
 * linear however long the runs.
 */
const RUN = LONG_PIECE - 4;
const RUN_CLASSES = ['[\\p{L}\\p{M}]', '(?:[\\r\\n]|[^\\s\\p{L}\\p{N}])', '\\s'];
const MAYBE_LONG_PIECE = new RegExp(RUN_CLASSES.map((c) => `(?<!${c})${c}{${RUN}}`).join('|'), 'u');

/**
 * The text cut where gpt-tokenizer's encoding of it can be bounded: runs of ordinary
 * pieces whole (encoded as the library would), and each long piece in chunks of
 * LONG_PIECE code units (never splitting a surrogate pair).
 */
function* boundedParts(text: string): Generator<string> {
  if (!MAYBE_LONG_PIECE.test(text)) {
    yield text;
    return;
  }
  let start = 0;
  for (const match of text.matchAll(PIECES)) {
    const piece = match[0];
    if (piece.length <= LONG_PIECE) continue;
    if (match.index > start) yield text.slice(start, match.index);
    for (let at = 0; at < piece.length;) {
      let end = Math.min(at + LONG_PIECE, piece.length);
      if (end < piece.length && isHighSurrogate(piece.charCodeAt(end - 1))) end--;
      yield piece.slice(at, end);
      at = end;
    }
    start = match.index + piece.length;
  }
  if (start < text.length) yield text.slice(start);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** The tokens of a text, in time linear in its length. Synchronous: mind its size. */
export function countTokensNow(text: string): number {
  let count = 0;
  for (const part of boundedParts(text)) count += countPiecewise(part, PLAIN_TEXT);
  return count;
}

/** A text cut at `limit` tokens, as a model that stops there would answer it. */
export interface Cut {
  text: string;
  /** Tokens of the text returned. */
  tokens: number;
  truncated: boolean;
}

/** {@link cutAtTokens}, synchronous: mind the text's size. */
export function cutAtTokensNow(text: string, limit: number | null): Cut {
  if (limit == null) return { text, tokens: countTokensNow(text), truncated: false };
  const tokens: number[] = [];
  for (const part of boundedParts(text)) {
    for (const token of encode(part, PLAIN_TEXT)) tokens.push(token);
    if (tokens.length > limit) return { text: decodeCut(tokens.slice(0, limit)), tokens: limit, truncated: true };
  }
  return { text, tokens: tokens.length, truncated: false };
}

/**
 * The text of the first tokens of a text. gpt-tokenizer decodes through one shared
 * streaming TextDecoder: the bytes of a character that the cut split stay in it, and
 * would open the next text it decodes (another run's answer) as a U+FFFD. They are dropped.
 */
function decodeCut(tokens: number[]): string {
  const text = decode(tokens);
  sharedDecoder.decode();
  return text;
}

/**
 * A text cut at `limit` tokens as {@link Cut}, with the pieces a model streams it in:
 * one per token, but for a character whose bytes span tokens, which comes whole in the
 * piece of the token that completes it. Piece `i` is `text.slice(ends[i - 1] ?? 0,
 * ends[i])`, so the pieces make up `text` exactly and none splits a surrogate pair; it
 * took `tokenEnds[i] - (tokenEnds[i - 1] ?? 0)` tokens. (Tokens at the end of a cut that
 * complete no character belong to no piece, as they belong to no text.)
 */
export interface TokenPieces extends Cut {
  /** Where each piece ends in `text`, in UTF-16 code units. */
  ends: Uint32Array;
  /** How many tokens the answer has taken once each piece is out. */
  tokenEnds: Uint32Array;
}

/** {@link tokenPieces}, synchronous: mind the text's size. */
export function tokenPiecesNow(text: string, limit: number | null): TokenPieces {
  const ends: number[] = [];
  const tokenEnds: number[] = [];
  let chars = 0;
  let tokens = 0;
  let truncated = false;
  for (const part of boundedParts(text)) {
    let partTokens = encode(part, PLAIN_TEXT);
    if (limit != null && tokens + partTokens.length > limit) {
      partTokens = partTokens.slice(0, limit - tokens);
      truncated = true;
    }
    // gpt-tokenizer's streaming decode holds back a character's bytes until the token
    // that completes it: what it yields after the n-th token is that token's piece. Only
    // the lengths are kept, the text sliced from the input, so a lone surrogate there
    // (which decoding would turn into U+FFFD, one code unit as well) stays as it was.
    let decoded = 0;
    const counted = (function* () {
      for (const token of partTokens) {
        decoded++;
        yield token;
      }
    })();
    for (const piece of decodeGenerator(counted)) {
      chars += piece.length;
      ends.push(chars);
      tokenEnds.push(tokens + decoded);
    }
    tokens += partTokens.length;
    if (truncated) {
      // The bytes of a character the cut split stay in gpt-tokenizer's shared decoder: dropped (see decodeCut).
      sharedDecoder.decode();
      break;
    }
  }
  return {
    text: truncated ? text.slice(0, chars) : text,
    tokens,
    truncated,
    ends: Uint32Array.from(ends),
    tokenEnds: Uint32Array.from(tokenEnds),
  };
}

/** What the pool's threads run (see tokens-thread.ts). */
export const threadTasks = {
  count: (text: string): number => countTokensNow(text),
  countAll: (texts: string[]): number => texts.reduce((sum, text) => sum + countTokensNow(text), 0),
  countEach: (texts: string[]): number[] => texts.map(countTokensNow),
  cut: ({ text, limit }: { text: string; limit: number | null }): Cut => cutAtTokensNow(text, limit),
  pieces: ({ text, limit }: { text: string; limit: number | null }): TokenPieces => tokenPiecesNow(text, limit),
};

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
  if (text.length <= INLINE_CHARS) return countTokensNow(text);
  return tokenPool().run(text, { name: 'count' }) as Promise<number>;
}

/**
 * The text cut at `limit` tokens (none: whole), with its token count, off the event loop
 * when the text is long.
 */
export async function cutAtTokens(text: string, limit: number | null): Promise<Cut> {
  if (text.length <= INLINE_CHARS) return cutAtTokensNow(text, limit);
  return tokenPool().run({ text, limit }, { name: 'cut' }) as Promise<Cut>;
}

/**
 * The text cut at `limit` tokens (none: whole) and the pieces a model streams it in, off
 * the event loop when the text is long. Its text and tokens are those of {@link cutAtTokens}.
 */
export async function tokenPieces(text: string, limit: number | null): Promise<TokenPieces> {
  if (text.length <= INLINE_CHARS) return tokenPiecesNow(text, limit);
  return tokenPool().run({ text, limit }, { name: 'pieces' }) as Promise<TokenPieces>;
}

/** Tokens a chat prompt spends on framing: a few for the prompt, a few per message, as OpenAI counts. */
export const PROMPT_FRAMING = 3;
export const MESSAGE_FRAMING = 4;

/** Tokens of a chat prompt: contents plus a few per message for the framing, as OpenAI counts. */
export async function promptTokens(messages: readonly { content: string }[]): Promise<number> {
  const framing = PROMPT_FRAMING + MESSAGE_FRAMING * messages.length;
  const length = messages.reduce((sum, m) => sum + m.content.length, 0);
  if (length <= INLINE_CHARS) return messages.reduce((sum, m) => sum + countTokensNow(m.content), framing);
  const counts = await Promise.all(poolTasks(messages).map((texts) => tokenPool().run(texts, { name: 'countAll' }) as Promise<number>));
  return counts.reduce((sum, n) => sum + n, framing);
}

/**
 * Tokens of each message's content (no framing), in order: what truncation weighs. Counted
 * as {@link promptTokens} counts, on the pool once the prompt is long.
 */
export async function messageTokens(messages: readonly { content: string }[]): Promise<number[]> {
  const length = messages.reduce((sum, m) => sum + m.content.length, 0);
  if (length <= INLINE_CHARS) return messages.map((m) => countTokensNow(m.content));
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

/**
 * Token counting itself, synchronous (o200k_base, through gpt-tokenizer), in time linear
 * in a text's length: see tokens.ts, which decides where it runs (inline, or on the pool
 * of threads) and loads this module when first needed. Its tables take about 20 MB of
 * heap and half a second to load: a process that runs no model (a gateway) never loads it.
 */
import { countTokens as countPiecewise, decode, decodeGenerator, encode } from 'gpt-tokenizer';
import { decoder as sharedDecoder } from 'gpt-tokenizer/BytePairEncodingCore';
import { O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';

/** Pieces up to this many UTF-16 code units are encoded whole, exactly; longer ones in chunks of it. */
export const LONG_PIECE = 256;

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

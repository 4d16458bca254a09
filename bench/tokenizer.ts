/**
 * gpt-tokenizer against Runway's bounded counting (src/engine/tokens.ts) on strings built
 * to be slow: one word of each kind, and ordinary text, in this thread (no pool), each
 * string new (so that gpt-tokenizer's merge cache does not help either side).
 *
 *   npm run bench:tokenizer
 *   BENCH_TOKENIZER_CHARS=16000 (gpt-tokenizer's length; 64000 takes minutes)
 *
 * Bounded: a fixed list of strings.
 */
import { countTokens as libraryCount } from 'gpt-tokenizer';
import { countTokensNow } from '../src/engine/token-counting.js';

const LIBRARY_CHARS = Number(process.env.BENCH_TOKENIZER_CHARS ?? 16_000);
const BOUNDED_CHARS = [LIBRARY_CHARS, 256_000];

let seed = 1;
const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
function text(length: number, pick: () => string): string {
  let s = '';
  while (s.length < length) s += pick();
  s = s.slice(0, length);
  return /[\ud800-\udbff]$/.test(s) ? `${s.slice(0, -1)}x` : s;
}
const from = (chars: string) => {
  const choices = Array.from(chars);
  return () => choices[Math.floor(next() * choices.length)]!;
};
const codePoint = (first: number, count: number) => () => String.fromCodePoint(first + Math.floor(next() * count));

const KINDS: Record<string, (n: number) => string> = {
  'one letter repeated (x)': (n) => 'x'.repeat(n),
  'random lowercase letters': (n) => text(n, from('abcdefghijklmnopqrstuvwxyz')),
  'random CJK': (n) => text(n, codePoint(0x4e00, 20_000)),
  'random emoji': (n) => text(n, codePoint(0x1f300, 700)),
  'random punctuation': (n) => text(n, from('!@#$%^&*()_+-=[]{};:,.<>?~`|')),
  spaces: (n) => ' '.repeat(n),
  'letters, accents, CJK, emoji mixed': (n) => text(n, from('éx漢😀ßж\u0301')),
  'English prose (ordinary)': (n) => text(n, () => 'The quick brown fox jumps over the lazy dog. '),
  'base64 (ordinary)': (n) =>
    Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)))
      .toString('base64')
      .slice(0, n),
};

function timed(count: (s: string) => number, s: string): { ms: number; tokens: number } {
  const started = performance.now();
  const tokens = count(s);
  return { ms: performance.now() - started, tokens };
}

// Compile both paths first.
for (const make of Object.values(KINDS)) {
  countTokensNow(make(2000));
  libraryCount(make(2000));
}

console.log(
  `\n| text | gpt-tokenizer, ${LIBRARY_CHARS.toLocaleString('en')} chars | bounded, same length | tokens: bounded / exact | bounded, 256,000 chars (µs per char) |`,
);
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const [kind, make] of Object.entries(KINDS)) {
  const exact = timed((s) => libraryCount(s), make(LIBRARY_CHARS));
  const bounded = timed(countTokensNow, make(LIBRARY_CHARS));
  const sameText = make(LIBRARY_CHARS);
  const ratio = countTokensNow(sameText) / libraryCount(sameText);
  const big = timed(countTokensNow, make(BOUNDED_CHARS[1]!));
  console.log(
    `| ${kind} | ${exact.ms.toFixed(1)} ms | ${bounded.ms.toFixed(1)} ms | ${ratio.toFixed(4)} | ${big.ms.toFixed(0)} ms (${((big.ms * 1000) / BOUNDED_CHARS[1]!).toFixed(2)}) |`,
  );
}

/**
 * The scripted model as a provider, called directly: how it streams its answer through
 * `onText` (a piece per token, characters whole, the pieces joined its answer exactly),
 * the `pace` it speaks at, a cancel while it speaks, and a long word that must not hold
 * the event loop. What it answers, end to end through runs, is scripted-runs.test.ts.
 */
import { decode, encode } from 'gpt-tokenizer';
import { afterAll, describe, expect, it } from 'vitest';
import type { ModelRequest, ModelResult } from '../../src/engine/providers/provider.js';
import { scriptedProvider } from '../../src/engine/providers/scripted.js';
import { countTokensNow, cutAtTokensNow } from '../../src/engine/token-counting.js';
import { closeTokenPool } from '../../src/engine/tokens.js';

afterAll(async () => {
  await closeTokenPool();
});

function request(message: string, overrides: Partial<ModelRequest> = {}): ModelRequest {
  return {
    model: 'scripted',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: message },
    ],
    tools: [{ type: 'function', function: { name: 'get_weather' } }],
    toolChoice: null,
    parallelToolCalls: true,
    responseFormat: null,
    temperature: null,
    topP: null,
    maxCompletionTokens: null,
    ...overrides,
  };
}

/** Calls the model, keeping each piece it streams and when it came (ms after the call). */
async function stream(req: ModelRequest, signal = new AbortController().signal) {
  const pieces: string[] = [];
  const at: number[] = [];
  const started = performance.now();
  const result = await scriptedProvider.complete(req, signal, (delta) => {
    pieces.push(delta);
    at.push(performance.now() - started);
  });
  return { result, pieces, at, elapsed: performance.now() - started };
}

function messageText(result: ModelResult): string {
  if (result.type !== 'message') throw new Error(`expected an answer, got ${result.type}`);
  return result.text;
}

/** Whether a string holds half a surrogate pair (on its own). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** No piece is empty, holds half a character, or a U+FFFD standing for one. */
function expectWholePieces(pieces: string[]) {
  expect(pieces.filter((piece) => piece.length === 0 || LONE_SURROGATE.test(piece) || piece.includes('\ufffd'))).toEqual([]);
}

describe('the scripted model streams its answer', () => {
  it('a token per piece, the pieces joined its answer exactly, and the same answer as without a listener', async () => {
    const message = 'What is the weather like in Paris today, and should I take an umbrella?';
    const { result, pieces } = await stream(request(message));
    const text = messageText(result);
    expect(text).toBe(`echo: ${message}`);
    expect(pieces.join('')).toBe(text);
    expect(pieces).toHaveLength(countTokensNow(text));
    expect(pieces).toEqual(encode(text).map((token) => decode([token])));
    expect(await scriptedProvider.complete(request(message), new AbortController().signal)).toEqual(result);
  });

  it('gives a character whose bytes span tokens whole, in the piece that completes it', async () => {
    for (const message of ['👩‍👩‍👧‍👦 🎉 日本語 𝒳', 'math 𝒳𝒴𝒵 and music 𝄞𝄢, emoji 🫠🦩 with skin tones 👍🏽👋🏿']) {
      const { result, pieces } = await stream(request(message));
      const text = messageText(result);
      expect(text).toBe(`echo: ${message}`);
      expect(pieces.join('')).toBe(text);
      expectWholePieces(pieces);
      // Fewer pieces than tokens: some characters took several.
      expect(pieces.length).toBeLessThan(countTokensNow(text));
      expect(result.usage.completionTokens).toBe(countTokensNow(text));
    }
  });

  it('stops its pieces where maxCompletionTokens cuts the answer, a character split by the cut left out', async () => {
    const message = '🎉🎉🎉 a long answer about parties 🎉🎉🎉 '.repeat(20);
    const full = `echo: ${message}`;
    for (const limit of [1, 2, 3, 5, 50]) {
      const { result, pieces } = await stream(request(message, { maxCompletionTokens: limit }));
      const cut = cutAtTokensNow(full, limit);
      expect(result).toMatchObject({ type: 'message', text: cut.text, truncated: true });
      expect(result.usage.completionTokens).toBe(limit);
      expect(pieces.join('')).toBe(cut.text);
      expectWholePieces(pieces);
    }
  });

  it('streams the JSON answer of a json response format', async () => {
    const { result, pieces } = await stream(request('Paris 🌧', { responseFormat: { type: 'json_object' } }));
    expect(messageText(result)).toBe('{"answer":"echo: Paris 🌧"}');
    expect(pieces.join('')).toBe(messageText(result));
  });

  it('streams nothing when it calls tools', async () => {
    const { result, pieces } = await stream(request('call get_weather {"city":"Paris"}\npace 10'));
    expect(result.type).toBe('tool_calls');
    expect(pieces).toEqual([]);
  });

  it('with `pace <ms>`, waits that long between tokens', async () => {
    const message = 'pace 30\nhello there, world';
    const { result, pieces, at, elapsed } = await stream(request(message));
    const tokens = countTokensNow(messageText(result));
    expect(pieces).toHaveLength(tokens);
    expect(pieces.join('')).toBe(messageText(result));
    // Timers do not fire early; a loaded machine may make them late.
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(29);
    expect(elapsed).toBeGreaterThanOrEqual(30 * (tokens - 1));
    expect(elapsed).toBeLessThan(30 * (tokens - 1) + 3000);
  });

  it('with a pace, waits for every token of a character that spans several', async () => {
    const message = 'pace 20\n𝒳';
    const text = `echo: ${message}`;
    const { pieces, at } = await stream(request(message));
    expect(pieces.at(-1)).toBe('𝒳');
    // 𝒳 takes several tokens: its piece comes after a wait for each.
    const tokensOfLast = countTokensNow(text) - countTokensNow(text.slice(0, -'𝒳'.length));
    expect(tokensOfLast).toBeGreaterThan(1);
    expect(at.at(-1)! - at.at(-2)!).toBeGreaterThanOrEqual(20 * tokensOfLast - 1);
  });

  it('rejects promptly, and streams no more, when cancelled while it speaks', async () => {
    const controller = new AbortController();
    const pieces: string[] = [];
    const call = scriptedProvider.complete(request('pace 1000\nA slow answer, one token a second.'), controller.signal, (d) => {
      pieces.push(d);
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(pieces).toEqual(['echo']); // the first token at once, the next a second later
    const reason = new Error('cancelled');
    const aborted = performance.now();
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
    expect(performance.now() - aborted).toBeLessThan(200);
    await new Promise((r) => setTimeout(r, 1100));
    expect(pieces).toEqual(['echo']);
  });

  it('streams a 64,000-character word without holding the event loop 200 ms at once', async () => {
    // Random CJK with no space: a token or so per character, and the kind of word that
    // makes gpt-tokenizer quadratic (tokens.ts).
    let seed = 42;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const word = Array.from({ length: 64_000 }, () => String.fromCodePoint(0x4e00 + Math.floor(next() * 20_000))).join('');

    let gap = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      gap = Math.max(gap, now - last);
      last = now;
    }, 1);
    let streamed: Awaited<ReturnType<typeof stream>>;
    try {
      streamed = await stream(request(word));
    } finally {
      clearInterval(ticker);
    }
    const { result, pieces, elapsed } = streamed;
    console.log(
      `a 64,000-character word of random CJK streamed in ${pieces.length} pieces: ${elapsed.toFixed(0)} ms, ` +
        `longest timer gap ${gap.toFixed(1)} ms`,
    );
    expect(pieces.join('')).toBe(`echo: ${word}`);
    expect(pieces.length).toBeGreaterThan(10_000);
    expectWholePieces(pieces);
    expect(result.usage.completionTokens).toBe(countTokensNow(`echo: ${word}`));
    expect(gap).toBeLessThan(200);
  });
});

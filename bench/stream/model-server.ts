/**
 * The stream bench's model: a stand-in for an OpenAI-compatible endpoint, outside
 * Runway, speaking the Chat Completions streaming wire format as the real one does
 * (`text/event-stream`, a role chunk, one `data:` chunk per token, the finish_reason
 * chunk, the usage chunk, `data: [DONE]`; as test/support/fake-openai.ts does).
 *
 * Every answer is TOKENS tokens (or the number the last user message asks for, as in
 * "Answer in 37 tokens."), one chunk every TOKEN_MS milliseconds, each chunk's content
 * being its own send time: `⟨123456.7⟩` (performance.timeOrigin + performance.now(), in
 * ms, the same clock in every process of this machine, modulo 1,000 s: about as long as
 * two or three real tokens, where the whole time would be as long as six). A subscriber
 * that finds it in a delta knows how long the token took from here to there.
 *
 *   PORT=0 TOKENS=200 TOKEN_MS=40 node --import tsx bench/stream/model-server.ts
 *
 * Prints `model on http://127.0.0.1:<port>/v1` once it listens.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

const TOKENS = Number(process.env.TOKENS ?? 200);
const TOKEN_MS = Number(process.env.TOKEN_MS ?? 40);

const base = { id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: 'bench' };
const chunk = (delta: object, finishReason: string | null = null) =>
  `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`;

/** The token a chunk carries: when it was sent (see readStamps in token-stream.ts). */
const stamp = () => `⟨${((performance.timeOrigin + performance.now()) % 1e6).toFixed(1)}⟩`;

/** How many tokens the last user message asks for, else TOKENS. */
function tokensAsked(body: any): number {
  const last = [...(body?.messages ?? [])].reverse().find((m: any) => m.role === 'user');
  const asked = /(\d+) tokens/.exec(String(last?.content ?? ''))?.[1];
  return asked ? Math.max(1, Number(asked)) : TOKENS;
}

async function handle(req: IncomingMessage, res: ServerResponse) {
  let raw = '';
  for await (const part of req) raw += part;
  if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'not found' } }));
    return;
  }
  const tokens = tokensAsked(JSON.parse(raw));
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(chunk({ role: 'assistant', content: '' }));
  // Paced against the start, not the previous chunk: a late timer does not slow the answer.
  const start = performance.now();
  let sent = 0;
  const next = () => {
    if (res.destroyed) return; // the run was cancelled, or the worker went away
    if (sent < tokens) {
      res.write(chunk({ content: stamp() }));
      sent++;
      setTimeout(next, Math.max(0, start + (sent + 1) * TOKEN_MS - performance.now()));
      return;
    }
    res.write(chunk({}, 'stop'));
    res.write(
      `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 10, completion_tokens: tokens, total_tokens: tokens + 10 } })}\n\n`,
    );
    res.end('data: [DONE]\n\n');
  };
  setTimeout(next, TOKEN_MS);
}

const server = createServer((req, res) => {
  handle(req, res).catch(() => res.destroy());
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address() as AddressInfo;
  console.log(`model on http://${address}:${port}/v1`);
});
process.on('SIGTERM', () => process.exit(0));

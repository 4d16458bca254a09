/**
 * A stand-in for an OpenAI-compatible endpoint, on a real port, speaking the Chat
 * Completions wire format: SSE `data:` chunks with content and tool_calls deltas, a usage
 * chunk, `data: [DONE]`, and JSON error bodies with HTTP statuses; or a stream that ends
 * badly. Each request takes the next scripted reply; every request body is kept for
 * inspection.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Reply =
  | {
      kind: 'stream';
      chunks: object[];
      usage?: { prompt_tokens: number; completion_tokens: number };
      /** After the chunks, the response stays open this long... */
      holdMs?: number;
      /** ...or until this settles. */
      until?: Promise<unknown>;
      /**
       * How the stream ends: the usage chunk and `data: [DONE]` (`done`, the default); the
       * response closed in good order with neither (`close`); the connection cut (`cut`).
       */
      end?: 'done' | 'close' | 'cut';
      /** Each chunk written a byte at a time, so characters are split on the wire. */
      byteByByte?: boolean;
    }
  | { kind: 'error'; status: number; message: string };

export interface FakeOpenAI {
  baseURL: string;
  requests: any[];
  reply(...replies: Reply[]): void;
  close(): Promise<void>;
}

const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-test' };

/**
 * Chunks of a streamed text answer, four UTF-16 code units per chunk (so a surrogate pair
 * may straddle two, as JSON escapes), and the chunk that says why it ended (none: `null`).
 */
export function textChunks(text: string, finishReason: 'stop' | 'length' | null = 'stop'): object[] {
  const parts = text.match(/.{1,4}/gs) ?? [];
  return [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
    ...parts.map((p) => ({ ...base, choices: [{ index: 0, delta: { content: p }, finish_reason: null }] })),
    ...(finishReason ? [{ ...base, choices: [{ index: 0, delta: {}, finish_reason: finishReason }] }] : []),
  ];
}

/** Chunks of tool calls, each split over several deltas as real endpoints send them. */
export function toolCallChunks(calls: { id: string; name: string; arguments: string }[]): object[] {
  const chunks: object[] = [{ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: null }, finish_reason: null }] }];
  calls.forEach((c, index) => {
    chunks.push({
      ...base,
      choices: [
        {
          index: 0,
          delta: { tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }] },
          finish_reason: null,
        },
      ],
    });
    for (const piece of c.arguments.match(/.{1,5}/gs) ?? []) {
      chunks.push({
        ...base,
        choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: piece } }] }, finish_reason: null }],
      });
    }
  });
  chunks.push({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] });
  return chunks;
}

export async function startFakeOpenAI(): Promise<FakeOpenAI> {
  const queue: Reply[] = [];
  const requests: any[] = [];
  const open = new Set<ServerResponse>();

  async function handle(req: IncomingMessage, res: ServerResponse) {
    let body = '';
    for await (const chunk of req) body += chunk;
    requests.push({ path: req.url, authorization: req.headers.authorization, body: JSON.parse(body) });
    const reply = queue.shift() ?? { kind: 'error', status: 500, message: 'no reply scripted' };
    if (reply.kind === 'error') {
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: reply.message, type: 'test_error', code: null } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    open.add(res);
    res.on('close', () => open.delete(res));
    for (const chunk of reply.chunks) {
      const event = Buffer.from(`data: ${JSON.stringify(chunk)}\n\n`);
      if (!reply.byteByByte) res.write(event);
      else {
        for (const byte of event) {
          res.write(Buffer.of(byte));
          await new Promise((r) => setImmediate(r));
        }
      }
    }
    if (reply.holdMs) await new Promise((r) => setTimeout(r, reply.holdMs));
    if (reply.until) await reply.until.catch(() => {});
    if (res.destroyed) return;
    if (reply.end === 'cut') return void res.destroy();
    if (reply.end === 'close') return void res.end();
    if (reply.usage) {
      const u = reply.usage;
      res.write(
        `data: ${JSON.stringify({ ...base, choices: [], usage: { ...u, total_tokens: u.prompt_tokens + u.completion_tokens } })}\n\n`,
      );
    }
    res.end('data: [DONE]\n\n');
  }

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    reply: (...replies) => void queue.push(...replies),
    close: () =>
      new Promise((r) => {
        for (const res of open) res.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * The event-stream response (src/rest/sse.ts) on a real node:http server: the format, the
 * keep-alive comments of an idle stream, waiting for a slow reader, and a client that
 * hangs up.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStreamResponse } from '../../src/rest/sse.js';
import { EventReader } from '../support/sse.js';
import { eventually } from '../support/test-app.js';

let server: Server;
let url: string;
/** The stream the server opened for the latest request. */
let opened: Promise<EventStreamResponse>;
let open: (s: EventStreamResponse) => void;

beforeAll(async () => {
  server = createServer((req, res) => {
    const keepAliveMs = Number(new URL(req.url!, 'http://x').searchParams.get('keepAliveMs') ?? 60_000);
    open(new EventStreamResponse(res, keepAliveMs));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function nextStream(): Promise<EventStreamResponse> {
  opened = new Promise((resolve) => (open = resolve));
  return opened;
}

describe('an event stream', () => {
  it('writes an event line, a data line and a blank line per event, as text/event-stream', async () => {
    const stream = nextStream();
    const res = await fetch(url);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const sse = await stream;
    sse.send('thread.message.delta', JSON.stringify({ text: 'a\nb 🐙' }));
    sse.send('done', '[DONE]');
    sse.end();
    expect(await res.text()).toBe('event: thread.message.delta\ndata: {"text":"a\\nb 🐙"}\n\nevent: done\ndata: [DONE]\n\n');
  });

  it('sends a keep-alive comment while it has nothing to send', async () => {
    const stream = nextStream();
    const reader = new EventReader(await fetch(`${url}?keepAliveMs=20`));
    const sse = await stream;
    const read = reader.all();
    await new Promise((r) => setTimeout(r, 150));
    sse.send('done', '[DONE]');
    sse.end();
    expect((await read).map((e) => e.event)).toEqual(['done']);
    expect(reader.comments.length).toBeGreaterThan(1);
    expect(new Set(reader.comments)).toEqual(new Set(['keep-alive']));
  });

  it('has no room while the client does not read, until it reads again', async () => {
    const stream = nextStream();
    const res = await new Promise<IncomingMessage>((resolve) => request(url, resolve).end());
    res.pause();
    const sse = await stream;
    const chunk = JSON.stringify('x'.repeat(64 * 1024));
    // Written until the socket's buffers are full: then room() stays pending.
    let blocked: Promise<void> | undefined;
    for (let i = 0; i < 10_000 && !blocked; i++) {
      sse.send('big', chunk);
      const room = sse.room();
      if (room && !(await Promise.race([room.then(() => true), new Promise((r) => setTimeout(r, 100, false))]))) blocked = room;
    }
    expect(blocked).toBeDefined();
    let drained = false;
    void blocked!.then(() => (drained = true));
    res.resume();
    await eventually(() => drained);
    sse.end();
  });

  it('tells when the client hangs up, and then writes nothing', async () => {
    const stream = nextStream();
    const hangUp = new AbortController();
    await fetch(url, { signal: hangUp.signal });
    const sse = await stream;
    let closed = false;
    sse.onClose(() => (closed = true));
    hangUp.abort();
    await eventually(() => closed);
    expect(sse.closed).toBe(true);
    expect(sse.room()).toBeUndefined();
    sse.send('late', '{}'); // dropped, not thrown
  });
});

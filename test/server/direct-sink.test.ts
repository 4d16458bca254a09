/**
 * Events written straight to a websocket: graphql-ws `next` messages; a bound on what a
 * subscriber that does not read may have waiting for live events, as the event queue
 * bounds it on the path through graphql-ws; and replayed events paced by the socket.
 */
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { RunStatusEvent } from '../../src/domain/run.js';
import { directSink } from '../../src/server/websocket.js';

/** A socket as the sink sees it: its state, its unsent bytes, what was sent. */
function fakeSocket() {
  const sent: string[] = [];
  const socket = { readyState: WebSocket.OPEN as number, bufferedAmount: 0, send: (data: string) => void sent.push(data) };
  return { socket, sent, sink: (capacity: number, id = '1') => directSink(socket as unknown as WebSocket, id, project, capacity) };
}
const event = { runId: 'run_1', version: 2 } as RunStatusEvent;
const project = (e: RunStatusEvent) => `{"data":{"v":${e.version}}}`;

describe('a direct sink', () => {
  it('writes each event as a graphql-ws next message of the subscription', () => {
    const { sent, sink } = fakeSocket();
    expect(sink(3, 'sub "1"').send(event, true)).toBe('sent');
    expect(sent).toEqual(['{"id":"sub \\"1\\"","type":"next","payload":{"data":{"v":2}}}']);
    expect(JSON.parse(sent[0]!)).toEqual({ id: 'sub "1"', type: 'next', payload: { data: { v: 2 } } });
  });

  it('reports the subscriber backlogged after `capacity` live writes in a row found bytes unsent', () => {
    const { socket, sink } = fakeSocket();
    const s = sink(3);
    socket.bufferedAmount = 100; // the client stopped reading
    expect([s.send(event, true), s.send(event, true), s.send(event, true)]).toEqual(['sent', 'sent', 'backlogged']);
  });

  it('starts counting again whenever the socket caught up', () => {
    const { socket, sink } = fakeSocket();
    const s = sink(3);
    socket.bufferedAmount = 100;
    expect([s.send(event, true), s.send(event, true)]).toEqual(['sent', 'sent']);
    socket.bufferedAmount = 0;
    expect(s.send(event, true)).toBe('sent');
    socket.bufferedAmount = 100;
    expect([s.send(event, true), s.send(event, true), s.send(event, true)]).toEqual(['sent', 'sent', 'backlogged']);
  });

  it('never cuts a replay off: a replayed event waits for room instead', async () => {
    const { socket, sent, sink } = fakeSocket();
    const s = sink(2);
    socket.bufferedAmount = 100;
    expect([s.send(event, false), s.send(event, false), s.send(event, false)]).toEqual(['sent', 'sent', 'sent']);
    expect(s.room()).toBeUndefined(); // 100 bytes unsent is room enough
    socket.bufferedAmount = 1024 * 1024;
    const room = s.room();
    expect(room).toBeInstanceOf(Promise);
    let roomy = false;
    void room!.then(() => (roomy = true));
    await new Promise((r) => setTimeout(r, 60));
    expect(roomy).toBe(false);
    socket.bufferedAmount = 0; // the client read
    await room;
    expect(sent).toHaveLength(3);
  });

  it('writes nothing to a socket that is closing, and has room for it (nothing to wait for)', () => {
    const { socket, sent, sink } = fakeSocket();
    const s = sink(3);
    socket.readyState = WebSocket.CLOSING;
    socket.bufferedAmount = 1024 * 1024;
    expect(s.send(event, true)).toBe('gone');
    expect(s.room()).toBeUndefined();
    expect(sent).toEqual([]);
  });
});

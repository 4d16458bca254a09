/**
 * Events written straight to a websocket: graphql-ws `next` messages, and a bound on
 * what a subscriber that does not read may have waiting, as the event queue bounds it
 * on the path through graphql-ws.
 */
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { RunStatusEvent } from '../../src/domain/run.js';
import { directSink } from '../../src/server/websocket.js';

/** A socket as the sink sees it: its state, its unsent bytes, what was sent. */
function fakeSocket() {
  const sent: string[] = [];
  const socket = { readyState: WebSocket.OPEN as number, bufferedAmount: 0, send: (data: string) => void sent.push(data) };
  return { socket, sent };
}
const event = { runId: 'run_1', version: 2 } as RunStatusEvent;
const project = (e: RunStatusEvent) => `{"data":{"v":${e.version}}}`;

describe('a direct sink', () => {
  it('writes each event as a graphql-ws next message of the subscription', () => {
    const { socket, sent } = fakeSocket();
    const sink = directSink(socket as unknown as WebSocket, 'sub "1"', project, 3);
    expect(sink(event)).toBe('sent');
    expect(sent).toEqual(['{"id":"sub \\"1\\"","type":"next","payload":{"data":{"v":2}}}']);
    expect(JSON.parse(sent[0]!)).toEqual({ id: 'sub "1"', type: 'next', payload: { data: { v: 2 } } });
  });

  it('reports the subscriber backlogged after `capacity` writes in a row found bytes unsent', () => {
    const { socket } = fakeSocket();
    const sink = directSink(socket as unknown as WebSocket, '1', project, 3);
    socket.bufferedAmount = 100; // the client stopped reading
    expect([sink(event), sink(event), sink(event)]).toEqual(['sent', 'sent', 'backlogged']);
  });

  it('starts counting again whenever the socket caught up', () => {
    const { socket } = fakeSocket();
    const sink = directSink(socket as unknown as WebSocket, '1', project, 3);
    socket.bufferedAmount = 100;
    expect([sink(event), sink(event)]).toEqual(['sent', 'sent']);
    socket.bufferedAmount = 0;
    expect(sink(event)).toBe('sent');
    socket.bufferedAmount = 100;
    expect([sink(event), sink(event), sink(event)]).toEqual(['sent', 'sent', 'backlogged']);
  });

  it('reports the subscriber backlogged past 1 MiB unsent, however few the writes', () => {
    const { socket } = fakeSocket();
    const sink = directSink(socket as unknown as WebSocket, '1', project, 1000);
    socket.bufferedAmount = 1024 * 1024 + 1;
    expect(sink(event)).toBe('backlogged');
  });

  it('writes nothing to a socket that is closing', () => {
    const { socket, sent } = fakeSocket();
    const sink = directSink(socket as unknown as WebSocket, '1', project, 3);
    socket.readyState = WebSocket.CLOSING;
    expect(sink(event)).toBe('gone');
    expect(sent).toEqual([]);
  });
});

/**
 * The stream bench's subscriber side: one websocket speaking graphql-transport-ws, as
 * little of it as a client needs (connection_init, subscribe, next / error / complete,
 * pong), so that the bench process, which holds a thousand of them on the same two
 * cores as the servers, spends as little as it can per frame. Every frame is timed as it
 * arrives, on the clock the model stand-in stamps its tokens with.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

/** Now, in ms, on the clock every process of this machine shares (see model-server.ts). */
export const wallNow = () => performance.timeOrigin + performance.now();

export interface Sink {
  /** One `next`: its `payload`, and when the frame arrived (wallNow). */
  next(payload: { data?: any; errors?: any[] }, at: number): void;
  error(errors: unknown): void;
  complete(): void;
}

export class GraphqlSocket {
  private readonly sinks = new Map<string, Sink>();
  private ids = 0;
  private closed = false;

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const at = wallNow();
      const message = JSON.parse(String(data));
      const sink = message.id === undefined ? undefined : this.sinks.get(message.id);
      switch (message.type) {
        case 'next':
          sink?.next(message.payload, at);
          return;
        case 'error':
          this.sinks.delete(message.id);
          sink?.error(message.payload);
          return;
        case 'complete':
          this.sinks.delete(message.id);
          sink?.complete();
          return;
        case 'ping':
          socket.send('{"type":"pong"}');
          return;
      }
    });
    socket.on('close', () => {
      this.closed = true;
      const sinks = [...this.sinks.values()];
      this.sinks.clear();
      for (const sink of sinks) sink.error(new Error('socket closed'));
    });
    socket.on('error', () => {});
  }

  /** A socket on `url` (http://.../graphql), acknowledged. */
  static open(url: string): Promise<GraphqlSocket> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
      const timer = setTimeout(() => (socket.terminate(), reject(new Error(`no connection_ack from ${url} in 10 s`))), 10_000);
      socket.once('open', () => socket.send('{"type":"connection_init","payload":{}}'));
      socket.once('error', (error) => (clearTimeout(timer), reject(error)));
      socket.once('close', (code, reason) => (clearTimeout(timer), reject(new Error(`closed before ack: ${code} ${reason}`))));
      const onAck = (data: WebSocket.RawData) => {
        if (JSON.parse(String(data)).type !== 'connection_ack') return;
        socket.off('message', onAck);
        clearTimeout(timer);
        socket.removeAllListeners('close');
        socket.removeAllListeners('error');
        resolve(new GraphqlSocket(socket));
      };
      socket.on('message', onAck);
    });
  }

  /** Subscribes; returns the subscription's id. */
  subscribe(query: string, variables: Record<string, unknown>, sink: Sink): string {
    const id = String(++this.ids);
    if (this.closed) {
      sink.error(new Error('socket closed'));
      return id;
    }
    this.sinks.set(id, sink);
    this.socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables } }));
    return id;
  }

  /** Ends a subscription from this side. */
  complete(id: string): void {
    if (!this.sinks.delete(id) || this.closed) return;
    this.socket.send(JSON.stringify({ id, type: 'complete' }));
  }

  /** Drops the connection at once, as a lost network does (no close handshake). */
  terminate(): void {
    this.socket.terminate();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close(1000);
    });
  }
}

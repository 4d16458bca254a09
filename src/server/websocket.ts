/**
 * graphql-ws served on a `ws` WebSocketServer: graphql-ws's own protocol server
 * (`makeServer`), with this adapter in place of its `use/ws` one, for what a gateway
 * holding many idle sockets pays per socket:
 *
 * - One heartbeat for all sockets. `use/ws` gives every socket its own ping interval, a
 *   pong timeout per ping and a `once('pong')` listener per ping. Here a single timer
 *   visits a twelfth of the sockets each tick (so the pings are spread out, not one burst
 *   of 10,000 writes), and a socket that has not answered the previous ping when it is
 *   visited again, one keep-alive interval later, is terminated.
 * - The upgrade request is not kept for the socket's life: the caller picks what it needs.
 * - A message is written without a write callback and a promise while the socket keeps up.
 *   Only when a client stops reading (its unsent bytes pass `HIGH_WATER_BYTES`) does the
 *   delivery wait for the write, which holds that subscription's stream back until its
 *   bounded queue cuts it off as lagging.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../log.js';
import { CloseCode, handleProtocols, makeServer, type ServerOptions } from 'graphql-ws';
import { WebSocket, type RawData, type WebSocketServer } from 'ws';
import type { DirectSink } from '../realtime/run-streams.js';

/** Unsent bytes on a socket beyond which a delivery waits for its write to finish. */
const HIGH_WATER_BYTES = 64 * 1024;
/** Heartbeat ticks per keep-alive interval: each visits one slice of the sockets. */
const SLICES = 12;

export interface GraphqlWsServer {
  /** Closes every socket with `code` and stops the heartbeat. */
  close(code: number, reason: string): Promise<void>;
}

/**
 * @param extra what the graphql-ws context keeps of a new connection (`ctx.extra`).
 * @param keepAliveMs ping interval; a socket silent for as long after a ping is terminated.
 * @param log where protocol errors (info) and failures handling a message (error) go.
 */
export function serveGraphqlWs<E extends Record<PropertyKey, unknown>>(
  options: ServerOptions<Record<string, unknown> | undefined, E>,
  wss: WebSocketServer,
  keepAliveMs: number,
  extra: (socket: WebSocket, request: IncomingMessage) => E,
  log: Pick<Logger, 'info' | 'error'>,
): GraphqlWsServer {
  const server = makeServer(options);
  wss.options.handleProtocols = handleProtocols;

  // The heartbeat: per slice, each socket and whether it owes a pong.
  const slices = Array.from({ length: SLICES }, () => new Map<WebSocket, boolean>());
  const sliceAt = (i: number) => slices[i] ?? (slices[i] = new Map());
  let joining = 0;
  let visiting = 0;
  const heartbeat = setInterval(() => {
    const slice = sliceAt(visiting);
    visiting = (visiting + 1) % SLICES;
    for (const [socket, owesPong] of slice) {
      if (owesPong) {
        socket.terminate(); // its 'close' handler takes it out of the slice
        continue;
      }
      slice.set(socket, true);
      socket.ping();
    }
  }, keepAliveMs / SLICES);
  heartbeat.unref();

  // Listeners shared by every socket (ws calls them with the socket as `this`): an idle
  // socket holds no closures of its own here.
  const connections = new WeakMap<WebSocket, Connection>();
  function onPong(this: WebSocket) {
    connections.get(this)?.slice.set(this, false);
  }
  function onMessage(this: WebSocket, data: RawData) {
    const connection = connections.get(this);
    connection?.handle?.(String(data)).catch((error: unknown) => {
      log.error({ err: error }, 'graphql-ws message handling failed');
      this.close(CloseCode.InternalServerError, 'Internal server error');
    });
  }
  // A frame ws refuses (too large, malformed): ws closes the socket itself (1009, 1002).
  function onError(this: WebSocket, error: Error & { code?: string }) {
    log.info({ code: error.code, reason: error.message }, 'websocket closed on a protocol error');
  }
  function onClose(this: WebSocket, code: number, reason: Buffer) {
    const connection = connections.get(this);
    if (!connection) return;
    connection.slice.delete(this);
    void connection.closed?.(code, String(reason));
  }

  wss.on('connection', (socket, request) => {
    const slice = sliceAt(joining);
    joining = (joining + 1) % SLICES;
    slice.set(socket, false);
    const connection = new Connection(socket, slice);
    connections.set(socket, connection);
    socket.on('pong', onPong);
    socket.on('message', onMessage);
    socket.once('error', onError);
    socket.once('close', onClose);
    connection.closed = server.opened(connection, extra(socket, request));
  });

  return {
    async close(code, reason) {
      clearInterval(heartbeat);
      for (const socket of wss.clients) socket.close(code, reason);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** One socket as graphql-ws sees it. */
class Connection {
  readonly protocol: string;
  /** graphql-ws's handler of an incoming message. */
  handle: ((data: string) => Promise<void>) | undefined;
  /** graphql-ws's end of the connection. */
  closed: ((code?: number, reason?: string) => Promise<void>) | undefined;

  constructor(
    private readonly socket: WebSocket,
    /** The heartbeat slice the socket is in, with whether it owes a pong. */
    readonly slice: Map<WebSocket, boolean>,
  ) {
    this.protocol = socket.protocol;
  }

  send(data: string): Promise<void> | void {
    const socket = this.socket;
    if (socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount < HIGH_WATER_BYTES) return void socket.send(data);
    return new Promise<void>((resolve, reject) => socket.send(data, (error) => (error ? reject(error) : resolve())));
  }

  close(code?: number, reason?: string): void {
    this.socket.close(code, reason);
  }

  onMessage(handle: (data: string) => Promise<void>): void {
    this.handle = handle;
  }
}

/** How often a replayed event's write checks whether its socket has room again. */
const ROOM_POLL_MS = 20;

/**
 * A subscription's result JSON per item (graphql/event-projection.ts), for the items it
 * `writes` (all without it).
 */
export type Projection<T> = ((item: T) => string) & { writes?(item: T): boolean };

/**
 * A subscription's events written straight to its socket as graphql-ws `next` messages
 * (the same bytes graphql-ws would write for that result). A live event goes out at
 * once; the subscriber is backlogged once `capacity` live events in a row found bytes
 * still unsent on the socket (the bound the event queue gives a subscription read
 * through graphql-ws). A replayed event waits, like graphql-ws's sends, while the socket
 * has `HIGH_WATER_BYTES` unsent. Items the projection does not write are left to
 * graphql-ws (see DirectSink.writes).
 */
export function directSink<T>(socket: WebSocket, id: string, project: Projection<T>, capacity: number): DirectSink<T> {
  const head = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  let waiting = 0;
  const hasRoom = () => socket.readyState !== WebSocket.OPEN || socket.bufferedAmount < HIGH_WATER_BYTES;
  return {
    ...(project.writes ? { writes: project.writes } : {}),
    send(item, live) {
      if (socket.readyState !== WebSocket.OPEN) return 'gone';
      socket.send(head + project(item) + '}');
      if (!live) return 'sent';
      waiting = socket.bufferedAmount > 0 ? waiting + 1 : 0;
      return waiting >= capacity ? 'backlogged' : 'sent';
    },
    room() {
      if (hasRoom()) return undefined;
      return new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (!hasRoom()) return;
          clearInterval(poll);
          resolve();
        }, ROOM_POLL_MS);
      });
    },
  };
}

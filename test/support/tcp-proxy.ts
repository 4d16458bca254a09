/**
 * A TCP proxy in front of PostgreSQL, so a test can take the database away from one
 * process (every connection cut, new ones refused for a while) as a restart would,
 * while other processes keep working.
 */
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export type Cut = 'close' | 'reset';

export interface TcpProxy {
  port: number;
  /** `databaseUrl` with its host and port replaced by the proxy's. */
  url(databaseUrl: string): string;
  /**
   * Cuts every connection and refuses new ones for `ms`: closed as a server that goes
   * away closes them (a new one is accepted and closed at once), or `reset` (a TCP RST,
   * as a network failure or a closed port answers: a new one fails at once).
   */
  interrupt(ms: number, how?: Cut): Promise<void>;
  /**
   * Cuts the next connection on which bytes containing `text` pass, once: sent by the
   * client (the default) or by the server, and cut `before` they are passed on or
   * `after` (a client's statement the server then runs, whose answer is lost). Resolves
   * once it has cut.
   */
  cutWhen(text: string, options?: { sentBy?: 'client' | 'server'; how?: Cut; when?: 'before' | 'after' }): Promise<void>;
  close(): Promise<void>;
}

function cut(socket: Socket, how: Cut): void {
  if (how === 'reset' && !socket.destroyed) socket.resetAndDestroy();
  else socket.destroy();
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let refusingUntil = 0;
  let refusal: Cut = 'close';
  type Trap = { text: string; sentBy: 'client' | 'server'; how: Cut; when: 'before' | 'after'; sprung: () => void };
  let trap: Trap | undefined;
  const server = createServer((client) => {
    if (Date.now() < refusingUntil) return void cut(client, refusal);
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    const relay = (from: Socket, to: Socket, sentBy: Trap['sentBy']) =>
      from.on('data', (data: Buffer) => {
        const sprung = trap?.sentBy === sentBy && data.includes(trap.text) ? trap : undefined;
        if (sprung) trap = undefined;
        if (sprung?.when !== 'before') to.write(data);
        if (!sprung) return;
        cut(client, sprung.how);
        upstream.destroy();
        sprung.sprung();
      });
    relay(client, upstream, 'client');
    relay(upstream, client, 'server');
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url(databaseUrl) {
      const url = new URL(databaseUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return url.toString();
    },
    async interrupt(ms, how = 'close') {
      refusingUntil = Date.now() + ms;
      refusal = how;
      for (const s of sockets) cut(s, how);
      await new Promise((r) => setTimeout(r, ms));
    },
    cutWhen(text, { sentBy = 'client', how = 'close', when = 'after' } = {}) {
      return new Promise((sprung) => (trap = { text, sentBy, how, when, sprung }));
    },
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface LoadBalancer {
  port: number;
  close(): Promise<void>;
}

/**
 * A TCP load balancer in front of several Runway processes, as a deployment puts one:
 * it checks each backend's /ready every `checkMs` and sends a new connection to the first
 * ready one (the next one if that refuses), so a draining process gets no new clients.
 */
export async function startLoadBalancer(backends: number[], checkMs = 100): Promise<LoadBalancer> {
  const ready = new Map<number, boolean>(backends.map((port) => [port, true]));
  const check = setInterval(() => {
    for (const port of backends) {
      fetch(`http://127.0.0.1:${port}/ready`).then(
        (res) => ready.set(port, res.status === 200),
        () => ready.set(port, false),
      );
    }
  }, checkMs);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    client.pause();
    const candidates = [...backends.filter((p) => ready.get(p)), ...backends.filter((p) => !ready.get(p))];
    const tryNext = () => {
      const port = candidates.shift();
      if (port === undefined) return void client.destroy();
      const upstream = connect(port, '127.0.0.1');
      let connected = false;
      // Refused: the next backend. Cut later: the client sees it cut.
      upstream.on('error', () => (connected ? client.destroy() : tryNext()));
      upstream.once('connect', () => {
        connected = true;
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        client.pipe(upstream).pipe(client);
        client.resume();
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
    };
    tryNext();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((r) => {
        clearInterval(check);
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

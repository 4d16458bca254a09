/**
 * A TCP proxy in front of PostgreSQL, so a test can take the database away from one
 * process (every connection cut, new ones refused for a while) as a restart would,
 * while other processes keep working.
 */
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Cuts every connection and refuses new ones for `ms`. */
  interrupt(ms: number): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let refusingUntil = 0;
  const server = createServer((client) => {
    if (Date.now() < refusingUntil) return void client.destroy();
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    async interrupt(ms) {
      refusingUntil = Date.now() + ms;
      for (const s of sockets) s.destroy();
      await new Promise((r) => setTimeout(r, ms));
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

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

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
   * away closes them, or `reset` (a TCP RST, as a network failure may).
   */
  interrupt(ms: number, how?: Cut): Promise<void>;
  /** Cuts the next connection whose client sends bytes containing `text`, once, after forwarding them. */
  cutWhenClientSends(text: string, how?: Cut): void;
  close(): Promise<void>;
}

function cut(socket: Socket, how: Cut): void {
  if (how === 'reset' && !socket.destroyed) socket.resetAndDestroy();
  else socket.destroy();
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let refusingUntil = 0;
  let trap: { text: string; how: Cut } | undefined;
  const server = createServer((client) => {
    if (Date.now() < refusingUntil) return void client.destroy();
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    // After pipe's listener: the bytes have gone on when the cut comes.
    client.on('data', (data: Buffer) => {
      if (!trap || !data.includes(trap.text)) return;
      const { how } = trap;
      trap = undefined;
      cut(client, how);
      upstream.destroy();
    });
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
      for (const s of sockets) cut(s, how);
      await new Promise((r) => setTimeout(r, ms));
    },
    cutWhenClientSends(text, how = 'close') {
      trap = { text, how };
    },
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

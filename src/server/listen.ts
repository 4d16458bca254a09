/** Starting an HTTP server: the main port's and the metrics port's alike. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens on host:port; resolves with the bound port (useful with port 0), rejects when it cannot bind. */
export function listen(http: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => {
      http.off('error', reject);
      resolve((http.address() as AddressInfo).port);
    });
  });
}

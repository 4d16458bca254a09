/**
 * The subscriber bench's floor: no GraphQL at all. A `ws` server that speaks just enough
 * of graphql-transport-ws for the bench's clients (connection_init -> connection_ack,
 * subscribe -> the run's current state, then a `next` per event of that run, complete),
 * fed by a postgres.js LISTEN on Runway's channel, writing each event as the same JSON
 * Runway sends, one socket write per event. What delivering an event costs here
 * (decoding the notification, finding the subscriber, one frame written) is the least
 * any server pays per delivered event on this machine.
 *
 *   DATABASE_URL=... PORT=0 node --import tsx bench/subscriptions/bare-ws-server.ts
 *
 * Prints `bare-ws on http://127.0.0.1:<port>/graphql` once it listens.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { WebSocketServer, type WebSocket } from 'ws';
import { isStatusEvent } from '../../src/domain/run-events.js';
import { decodeEvents } from '../../src/realtime/event-codec.js';
import { EVENTS_CHANNEL } from '../../src/realtime/transport.js';

const sql = postgres(process.env.DATABASE_URL!, { onnotice: () => {} });
/** runId -> the subscriptions to it. */
const byRun = new Map<string, Map<WebSocket, string>>();

const frame = (id: string, runId: string, version: number, status: string) =>
  JSON.stringify({ id, type: 'next', payload: { data: { runStatusChanged: { runId, version, status: status.toUpperCase() } } } });

await sql.listen(EVENTS_CHANNEL, (payload) => {
  for (const e of decodeEvents(payload).filter(isStatusEvent)) {
    const subscribers = byRun.get(e.runId);
    if (subscribers) for (const [socket, id] of subscribers) socket.send(frame(id, e.runId, e.version, e.status));
  }
});

const http = createServer((_, res) => res.writeHead(404).end());
const wss = new WebSocketServer({
  server: http,
  path: '/graphql',
  handleProtocols: (p) => (p.has('graphql-transport-ws') ? 'graphql-transport-ws' : false),
});
wss.on('connection', (socket) => {
  const mine = new Map<string, string>(); // subscription id -> runId
  socket.on('message', async (data) => {
    const message = JSON.parse(String(data));
    if (message.type === 'connection_init') return socket.send('{"type":"connection_ack"}');
    if (message.type === 'ping') return socket.send('{"type":"pong"}');
    if (message.type === 'complete') {
      const runId = mine.get(message.id);
      if (runId) byRun.get(runId)?.delete(socket);
      return;
    }
    if (message.type !== 'subscribe') return;
    const runId = String(Object.values(message.payload.variables ?? {})[0]);
    mine.set(message.id, runId);
    let subscribers = byRun.get(runId);
    if (!subscribers) byRun.set(runId, (subscribers = new Map()));
    subscribers.set(socket, message.id);
    const [run] = await sql`select version, status from runs where id = ${runId}`;
    if (run) socket.send(frame(message.id, runId, run.version, run.status));
  });
  socket.on('close', () => {
    for (const runId of mine.values()) byRun.get(runId)?.delete(socket);
  });
});

http.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = http.address() as AddressInfo;
  console.log(`bare-ws on http://${address}:${port}/graphql`);
});

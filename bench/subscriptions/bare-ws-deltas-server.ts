/**
 * The content bench's floor (bench/content-deltas.ts): no GraphQL at all. A `ws` server
 * that speaks just enough of graphql-transport-ws (connection_init -> connection_ack,
 * subscribe -> one first frame, then a `next` per text delta of that run), fed by a
 * postgres.js LISTEN on Runway's channel, writing each delta as one frame of the JSON a
 * runEvents subscriber of `{ __typename ... on MessageDeltaEvent { messageId index text } }`
 * gets. What delivering a delta costs here (decoding the notification, finding the
 * subscribers, one frame written to each) is the least any server pays per delta.
 *
 *   DATABASE_URL=... PORT=0 node --import tsx bench/subscriptions/bare-ws-deltas-server.ts
 *
 * Prints `bare-ws-deltas on http://127.0.0.1:<port>/graphql` once it listens.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { WebSocketServer, type WebSocket } from 'ws';
import { decodeEvents } from '../../src/realtime/event-codec.js';
import { EVENTS_CHANNEL } from '../../src/realtime/transport.js';

const sql = postgres(process.env.DATABASE_URL!, { onnotice: () => {} });
/** runId -> the subscriptions to it (socket -> subscription id). */
const byRun = new Map<string, Map<WebSocket, string>>();

await sql.listen(EVENTS_CHANNEL, (payload) => {
  for (const e of decodeEvents(payload)) {
    if (!('kind' in e) || e.kind !== 'delta' || e.text === null) continue;
    const subscribers = byRun.get(e.runId);
    if (!subscribers) continue;
    for (const [socket, id] of subscribers) {
      const data = { runEvents: { __typename: 'MessageDeltaEvent', messageId: e.messageId, index: e.index, text: e.text } };
      socket.send(JSON.stringify({ id, type: 'next', payload: { data } }));
    }
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
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    if (message.type === 'connection_init') return socket.send('{"type":"connection_ack"}');
    if (message.type === 'ping') return socket.send('{"type":"pong"}');
    if (message.type === 'complete') {
      const runId = mine.get(message.id);
      if (runId) byRun.get(runId)?.delete(socket);
      return;
    }
    if (message.type !== 'subscribe') return;
    const runId = String(message.payload.variables?.runId);
    mine.set(message.id, runId);
    let subscribers = byRun.get(runId);
    if (!subscribers) byRun.set(runId, (subscribers = new Map()));
    subscribers.set(socket, message.id);
    socket.send(JSON.stringify({ id: message.id, type: 'next', payload: { data: { runEvents: { __typename: 'RunStatusEvent' } } } }));
  });
  socket.on('close', () => {
    for (const runId of mine.values()) byRun.get(runId)?.delete(socket);
  });
});

http.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = http.address() as AddressInfo;
  console.log(`bare-ws-deltas on http://${address}:${port}/graphql`);
});

/**
 * The stream bench's floor: no GraphQL. A `ws` server that hears the same announcements
 * as a Runway gateway (a LISTEN on Runway's NOTIFY channel, or with REDIS_URL a
 * subscription to the deployment's Redis channel), decodes them with Runway's own codec
 * (src/realtime/event-codec.ts), and writes one frame per text delta per subscriber of
 * the delta's run: the JSON a Runway gateway sends for a `runEvents` selection of
 * `__typename ... on MessageDeltaEvent { index text }`. It speaks just enough
 * graphql-transport-ws for the bench's clients (connection_init -> connection_ack,
 * subscribe with the variables `{ t, r }`, complete), and completes a subscription when
 * its run's terminal status is heard.
 *
 * What it leaves out, so that it is the least any server pays per delivered delta:
 * authentication, limits, a buffer bound, the run's state and text so far on subscribe,
 * gap filling and resume (a delta missed is missed), status and message events.
 *
 *   DATABASE_URL=... [REDIS_URL=... REDIS_CHANNEL=runway:events:<db>] PORT=0 node --import tsx bench/stream/bare-ws-server.ts
 *
 * Prints `bare-ws on http://127.0.0.1:<port>/graphql` once it listens.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { WebSocketServer, type WebSocket } from 'ws';
import { isTerminal, type RunStatus } from '../../src/domain/run-lifecycle.js';
import { decodeEvents } from '../../src/realtime/event-codec.js';
import { EVENTS_CHANNEL } from '../../src/realtime/transport.js';

const sql = postgres(process.env.DATABASE_URL!, { onnotice: () => {}, max: 4 });
/** runId -> its subscribers: socket -> subscription id. */
const byRun = new Map<string, Map<WebSocket, string>>();

/** The frames of one delta: the part after the subscription id is built once per delta. */
const nextFrame = (id: string, body: string) => `{"id":${JSON.stringify(id)},"type":"next","payload":${body}}`;
const completeFrame = (id: string) => `{"id":${JSON.stringify(id)},"type":"complete"}`;

function onPayload(payload: string): void {
  for (const e of decodeEvents(payload)) {
    const subscribers = byRun.get(e.runId);
    if (!subscribers) continue;
    if ('kind' in e) {
      if (e.kind !== 'delta' || e.text === null) continue;
      const body = JSON.stringify({ data: { runEvents: { __typename: 'MessageDeltaEvent', index: e.index, text: e.text } } });
      for (const [socket, id] of subscribers) socket.send(nextFrame(id, body));
    } else if (isTerminal(e.status)) {
      for (const [socket, id] of subscribers) socket.send(completeFrame(id));
      byRun.delete(e.runId);
    }
  }
}

const redisUrl = process.env.REDIS_URL;
let redis: Redis | undefined;
if (redisUrl) {
  redis = new Redis(redisUrl);
  redis.on('message', (_channel: string, payload: string) => onPayload(payload));
  await redis.subscribe(process.env.REDIS_CHANNEL!);
} else {
  await sql.listen(EVENTS_CHANNEL, onPayload);
}

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
      mine.delete(message.id);
      if (runId) byRun.get(runId)?.delete(socket);
      return;
    }
    if (message.type !== 'subscribe') return;
    const runId = String(message.payload.variables.r);
    mine.set(message.id, runId);
    let subscribers = byRun.get(runId);
    if (!subscribers) byRun.set(runId, (subscribers = new Map()));
    subscribers.set(socket, message.id);
    // A run that ended before the subscription was made is complete at once.
    const [run] = await sql<{ status: RunStatus }[]>`select status from runs where id = ${runId}`;
    if (!run || isTerminal(run.status)) {
      byRun.get(runId)?.delete(socket);
      socket.send(completeFrame(message.id));
    }
  });
  socket.on('close', () => {
    for (const runId of mine.values()) byRun.get(runId)?.delete(socket);
  });
});

http.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = http.address() as AddressInfo;
  console.log(`bare-ws on http://${address}:${port}/graphql`);
});
process.on('SIGTERM', () => {
  wss.close();
  http.close();
  redis?.disconnect();
  void sql.end({ timeout: 1 }).then(() => process.exit(0));
});

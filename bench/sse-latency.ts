/**
 * `npm run bench:sse`: a streamed run's first `thread.message.delta` over server-sent
 * events (`POST /v1/threads/{t}/runs` with `stream: true`) against the first
 * MessageDeltaEvent of a graphql-ws `runEvents` subscription to the same run, both
 * clients in this process, on the same runs, side by side.
 *
 * One Runway process (ROLE=all, compiled, open local mode, the scripted model) on a
 * scratch database. For each of BENCH_RUNS runs, BENCH_LANES at a time: a thread with
 * one user message, the SSE request that creates its run; as soon as
 * `thread.run.created` gives the run's id, a `runEvents(threadId, runId)` subscription
 * (no `after`) on a websocket opened beforehand. Per run, the arrival time of each
 * client's first delta, on one clock; the figure is their difference, SSE - GraphQL (a
 * positive value: SSE was later).
 *
 * Fairness. The SSE request subscribes first (the request itself creates the run and
 * opens its stream), the GraphQL subscription one round trip later. So that both are
 * live when the first token is spoken, the model first waits (`sleep BENCH_SLEEP_MS`),
 * then speaks one token every BENCH_PACE_MS (`pace`): the first delta is then a live
 * delivery to both, not a catch-up read. A GraphQL subscription whose first event (the
 * run's current status, sent at once) came after SSE's first delta was not live in time:
 * such runs are counted and left out of the difference. The two sockets are read by one
 * event loop: whichever frame is read first is stamped first, a few microseconds apart.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:sse
 *   BENCH_RUNS=200 BENCH_LANES=4 BENCH_SLEEP_MS=150 BENCH_PACE_MS=20 BENCH_TOKENS=10
 *   BENCH_DOCS=0   (print only: leave docs/performance.md as it is)
 */
import { request, Agent } from 'node:http';
import postgres from 'postgres';
import { buildRunway, startRunwayProcess, type RunwayProcess } from '../test/support/processes.js';
import { log, median, RUN_NAME, scratchDatabase, type Defer } from './http/harness.js';
import { resultLines } from './results.js';
import { GraphqlSocket, wallNow } from './stream/ws-client.js';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const LANES = Number(process.env.BENCH_LANES ?? 4);
const SLEEP_MS = Number(process.env.BENCH_SLEEP_MS ?? 150);
const PACE_MS = Number(process.env.BENCH_PACE_MS ?? 20);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 10);
/** A run whose two streams have not both ended after this fails the bench. */
const RUN_TIMEOUT_MS = 30_000;
/** The target: SSE's first delta at most this much after GraphQL's, at p99. */
const TARGET_MS = 10;

const DELTAS = `subscription($t: ID!, $r: ID!) { runEvents(threadId: $t, runId: $r) { __typename ... on MessageDeltaEvent { index text } } }`;
/** The user's message: wait, then speak TOKENS words, one every PACE_MS. */
const PROMPT = `sleep ${SLEEP_MS}\npace ${PACE_MS}\n${Array.from({ length: TOKENS - 2 }, (_, i) => `w${i}`).join(' ')}`;

const agent = new Agent({ keepAlive: true, maxSockets: LANES * 2 });

/** A JSON POST to Runway's REST API, its answer parsed. */
function postJson(origin: string, path: string, body: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = request(`${origin}${path}`, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${path}: ${res.statusCode} ${text}`))));
    });
    req.once('error', reject);
    req.end(JSON.stringify(body));
  });
}

interface Timing {
  /** When the SSE request was sent, its run created (thread.run.created read), its first delta read. */
  sent: number;
  created: number;
  sseDelta: number;
  /** When the subscription's first frame (the run's current status) and first delta were read. */
  subscribed: number;
  graphqlDelta: number;
}

/** One run, streamed to both clients; resolves when both streams ended. */
function streamRun(origin: string, socket: GraphqlSocket, threadId: string, assistantId: string): Promise<Timing> {
  const t: Timing = { sent: wallNow(), created: NaN, sseDelta: NaN, subscribed: NaN, graphqlDelta: NaN };
  let sseEnded!: () => void;
  let graphqlEnded!: () => void;
  const ended = Promise.all([new Promise<void>((r) => (sseEnded = r)), new Promise<void>((r) => (graphqlEnded = r))]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`run on ${threadId}: streams not ended in ${RUN_TIMEOUT_MS} ms`)), RUN_TIMEOUT_MS);
    const subscribe = (runId: string) =>
      socket.subscribe(
        DELTAS,
        { t: threadId, r: runId },
        {
          next(payload, at) {
            if (payload.errors) return reject(new Error(`runEvents: ${JSON.stringify(payload.errors)}`));
            if (Number.isNaN(t.subscribed)) t.subscribed = at;
            if (payload.data?.runEvents?.__typename === 'MessageDeltaEvent' && Number.isNaN(t.graphqlDelta)) t.graphqlDelta = at;
          },
          error: (errors) => reject(new Error(`runEvents: ${JSON.stringify(errors)}`)),
          complete: graphqlEnded,
        },
      );
    const req = request(
      `${origin}/v1/threads/${threadId}/runs`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', accept: 'text/event-stream' } },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`stream: ${res.statusCode}`));
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const at = wallNow();
          buffer += chunk;
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const name = /^event: (.+)$/m.exec(block)?.[1];
            if (name === 'thread.run.created') {
              t.created = at;
              // At once, in the same turn: the GraphQL client follows the run the moment it knows its id.
              subscribe(JSON.parse(/^data: (.+)$/m.exec(block)![1]!).id);
            } else if (name === 'thread.message.delta' && Number.isNaN(t.sseDelta)) t.sseDelta = at;
          }
        });
        res.on('end', sseEnded);
        res.on('error', reject);
      },
    );
    req.once('error', reject);
    req.end(JSON.stringify({ assistant_id: assistantId, stream: true }));
    void ended.then(() => {
      clearTimeout(timer);
      if (Number.isNaN(t.sseDelta) || Number.isNaN(t.graphqlDelta)) reject(new Error(`run on ${threadId}: a client saw no delta`));
      else resolve(t);
    });
  });
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};
const ms = (n: number) => `${n.toFixed(1)} ms`;

async function main(defer: Defer) {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  defer(() => admin.end());
  const databaseUrl = await scratchDatabase(admin, serverUrl, `${RUN_NAME}_sse`, defer);
  const runway: RunwayProcess = await startRunwayProcess(
    {
      ROLE: 'all',
      NODE_ENV: 'production',
      DATABASE_URL: databaseUrl,
      RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
      RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0',
    },
    [],
    true,
  );
  defer(() => runway.kill('SIGTERM'));
  const graphqlUrl = runway.url!;
  const origin = new URL(graphqlUrl).origin;

  const assistant = await postJson(origin, '/v1/assistants', { model: 'scripted' });
  const sockets = await Promise.all(Array.from({ length: LANES }, () => GraphqlSocket.open(graphqlUrl)));
  defer(async () => void (await Promise.all(sockets.map((s) => s.close()))));
  const threads: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    threads.push((await postJson(origin, '/v1/threads', { messages: [{ role: 'user', content: PROMPT }] })).id);
  }
  log(`${RUNS} threads; streaming their runs, ${LANES} at a time (prompt: ${JSON.stringify(PROMPT)})`);

  // A few runs first, not counted: JIT, pools, the model's tokenizer.
  const warm = Math.min(LANES * 2, RUNS);
  const timings: Timing[] = [];
  let next = 0;
  await Promise.all(
    sockets.map(async (socket) => {
      for (let i = next++; i < RUNS; i = next++) timings[i] = await streamRun(origin, socket, threads[i]!, assistant.id);
    }),
  );
  const counted = timings.slice(warm);
  const live = counted.filter((t) => t.subscribed < t.sseDelta);
  const late = counted.length - live.length;
  const diffs = live.map((t) => t.sseDelta - t.graphqlDelta);
  const setup = live.map((t) => t.subscribed - t.created);
  const fromSent = (pick: (t: Timing) => number) => live.map((t) => pick(t) - t.sent);
  const p99 = quantile(diffs, 0.99);

  const results = resultLines();
  results.print(
    `\nOne Runway (ROLE=all, compiled), ${counted.length} runs (after ${warm} not counted), ${LANES} at a time; the scripted model sleeps ${SLEEP_MS} ms, then speaks ${TOKENS} tokens, one every ${PACE_MS} ms\n`,
  );
  results.print('| figure | p50 | p99 | max |');
  results.print('| --- | ---: | ---: | ---: |');
  const row = (name: string, xs: number[]) =>
    results.print(`| ${name} | ${ms(quantile(xs, 0.5))} | ${ms(quantile(xs, 0.99))} | ${ms(Math.max(...xs))} |`);
  row('first delta, SSE - GraphQL', diffs);
  row(
    'first delta over SSE, from the request',
    fromSent((t) => t.sseDelta),
  );
  row(
    'first delta over GraphQL, from the SSE request',
    fromSent((t) => t.graphqlDelta),
  );
  row('GraphQL subscribed (first frame), from thread.run.created', setup);
  results.print(
    `\nSSE's first delta, p99, ${ms(p99)} after GraphQL's (target: at most ${TARGET_MS} ms): **${p99 <= TARGET_MS ? 'met' : 'missed'}**; ` +
      `SSE first in ${diffs.filter((d) => d < 0).length} of ${diffs.length} runs, median ${ms(median(diffs))}; ` +
      `${late} runs left out (their subscription was not live before the first delta)`,
  );
  results.record('sse');
}

const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;
const cleanUp = () =>
  (cleaning ??= (async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((e: unknown) => log(`cleanup failed: ${String(e)}`));
    agent.destroy();
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanUp().then(() => process.exit(130));
  });
}
buildRunway();
try {
  await main((cleanup) => void cleanups.push(cleanup));
} finally {
  await cleanUp();
}

/**
 * Token streaming: what delivering a message's text deltas costs a gateway, in CPU per
 * delta written to one subscriber. A local micro-benchmark (not in CI), three targets:
 *
 * - `direct`: runEvents subscribers whose selection the websocket writes straight from
 *   each delivery (graphql/event-projection.ts);
 * - `executed`: the same selection with `@include(if: true)` at its root, which the
 *   projection leaves to GraphQL execution per delivery (graphql-ws's own path);
 * - `bare-ws` (bench/subscriptions/bare-ws-deltas-server.ts), the floor: no GraphQL, a `ws`
 *   server on the same LISTEN writing one frame per delta and subscriber.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/content-deltas.ts
 *   BENCH_RUNS=20 (runs streaming at once)  BENCH_SUBSCRIBERS=5 (sockets, each subscribed to every run)
 *   BENCH_PIECES=1500 (pieces per run; pieces that arrive while a write is under way go as one delta)  BENCH_RATE=5000 (pieces per second, over all runs)
 *   BENCH_REPEATS=3  BENCH_TARGETS=direct,executed,bare-ws
 *
 * This process drives: it creates the runs, claims them, and streams their messages
 * through Runway's own message writer (one statement and one notification per write,
 * as a worker does), and its sockets are the subscribers. The gateway (src/main.ts,
 * ROLE=gateway, compiled) or the floor is a process of its own, whose CPU (user +
 * system, /proc) is read before the drive and after the last delta arrived, less what
 * it spent idle over as long (measured just before). Targets take turns, BENCH_REPEATS
 * times each, after one unmeasured warm-up round each; the medians are printed side by
 * side. Bounded: fixed counts; it stops by itself and drops its database.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import WebSocket from 'ws';
import { buildApp, type App } from '../src/app.js';
import { buildRunway, startRunwayProcess, startServerProcess, type RunwayProcess } from '../test/support/processes.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 5);
const PIECES = Number(process.env.BENCH_PIECES ?? 1500);
const RATE = Number(process.env.BENCH_RATE ?? 5000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const TARGETS = (process.env.BENCH_TARGETS ?? 'direct,executed,bare-ws').split(',') as Target[];
type Target = 'direct' | 'executed' | 'bare-ws';
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const SELECTION = `__typename cursor ... on MessageDeltaEvent { messageId index text } ... on MessageEvent { kind } ... on RunStatusEvent { status }`;
const query = (target: Target) =>
  `subscription($threadId: ID!, $runId: ID!) { runEvents(threadId: $threadId, runId: $runId)${target === 'executed' ? ' @include(if: true)' : ''} { ${SELECTION} } }`;

/** User + system CPU time of a process, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks of 10 ms
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A graphql-transport-ws socket that counts the deltas it receives. */
async function subscriber(url: string) {
  const socket = new WebSocket(url.replace('http', 'ws'), 'graphql-transport-ws');
  let acked = false;
  let firsts = 0;
  let deltas = 0;
  let errors = 0;
  socket.on('message', (data) => {
    const text = String(data);
    if (text.includes('"MessageDeltaEvent"')) deltas++;
    else if (text.includes('"connection_ack"')) acked = true;
    else if (text.includes('"RunStatusEvent"')) firsts++;
    else if (text.includes('"errors"')) errors++;
  });
  await once(socket, 'open');
  socket.send(JSON.stringify({ type: 'connection_init' }));
  await until(() => acked);
  return {
    socket,
    firsts: () => firsts,
    deltas: () => deltas,
    errors: () => errors,
  };
}

async function until(predicate: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One measurement: RUNS runs streamed at RATE pieces/s, each delta to SUBSCRIBERS sockets. */
async function measure(
  driver: App,
  target: Target,
  server: RunwayProcess,
): Promise<{ usPerDelivered: number; delivered: number; deltas: number }> {
  const { assistants, threads, runs } = driver.services;
  const assistant = await assistants.create('default', { model: 'scripted' });
  const created = await Promise.all(
    Array.from({ length: RUNS }, async () => {
      const thread = await threads.create('default', {});
      return runs.create('default', thread.id, { assistantId: assistant.id });
    }),
  );
  const sockets = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => subscriber(server.url!)));
  for (const s of sockets)
    created.forEach((run, i) =>
      s.socket.send(
        JSON.stringify({
          id: String(i),
          type: 'subscribe',
          payload: { query: query(target), variables: { threadId: run.threadId, runId: run.id } },
        }),
      ),
    );
  await until(() => sockets.every((s) => s.firsts() >= RUNS));
  const claimed = await driver.engine.claim('bench', RUNS, 600);
  if (claimed.length !== RUNS) throw new Error(`claimed ${claimed.length} of ${RUNS} runs`);
  const streams = claimed.map((run) => ({ run, stream: driver.engine.streamMessage(run, run.leaseToken!) }));

  // Idle: what the server spends with these subscribers and nothing to deliver.
  const pid = server.child.pid!;
  const idleStart = cpuMs(pid);
  const idleStarted = performance.now();
  await new Promise((r) => setTimeout(r, 1000));
  const idlePerMs = (cpuMs(pid) - idleStart) / (performance.now() - idleStarted);

  const cpuBefore = cpuMs(pid);
  const started = performance.now();
  const tickMs = (RUNS * 1000) / RATE;
  for (let k = 0; k < PIECES; k++) {
    const due = started + k * tickMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    for (const { stream } of streams) stream.push(`tok${k} `);
  }
  // Until the deliveries stop.
  let last = -1;
  for (;;) {
    await new Promise((r) => setTimeout(r, 300));
    const now = sockets.reduce((n, s) => n + s.deltas(), 0);
    if (now === last) break;
    last = now;
  }
  const elapsedMs = performance.now() - started;
  const cpu = cpuMs(pid) - cpuBefore - idlePerMs * elapsedMs;
  const delivered = sockets.reduce((n, s) => n + s.deltas(), 0);
  const errors = sockets.reduce((n, s) => n + s.errors(), 0);
  if (errors > 0) throw new Error(`${errors} error payloads`);

  const usage = { promptTokens: 1, completionTokens: 1, totalTokens: 2 };
  await Promise.all(
    streams.map(async ({ run, stream }) => {
      const message = await stream.close();
      await driver.engine.finishWithMessage(run, run.leaseToken!, { text: 'done', usage, truncated: false }, usage, message);
    }),
  );
  for (const s of sockets) s.socket.close();
  await new Promise((r) => setTimeout(r, 300));
  return { usPerDelivered: (cpu * 1000) / delivered, delivered, deltas: delivered / SUBSCRIBERS };
}

async function main() {
  const dbName = `runway_bench_deltas_${process.pid}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const databaseUrl = url.toString();
  let driver: App | undefined;
  const servers: RunwayProcess[] = [];
  try {
    driver = await buildApp(
      { databaseUrl, pgliteDir: 'memory://', databasePoolSize: 8, runExpiresAfterSeconds: 86_400, production: false },
      { worker: false },
    );
    const start = (target: Target) =>
      target === 'bare-ws'
        ? startServerProcess('bench/subscriptions/bare-ws-deltas-server.ts', { DATABASE_URL: databaseUrl }, [], {
            label: target,
            compiled: true,
          })
        : startRunwayProcess(
            {
              DATABASE_URL: databaseUrl,
              ROLE: 'gateway',
              WS_MAX_SUBSCRIPTIONS: String(RUNS),
              RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0',
            },
            [],
            true,
          );
    const results = new Map<Target, number[]>(TARGETS.map((t) => [t, []]));
    const runway = TARGETS.some((t) => t !== 'bare-ws') ? await start('direct') : undefined;
    const bare = TARGETS.includes('bare-ws') ? await start('bare-ws') : undefined;
    servers.push(...[runway, bare].filter((s): s is RunwayProcess => s !== undefined));
    const serverOf = (t: Target) => (t === 'bare-ws' ? bare! : runway!);
    for (const target of TARGETS) await measure(driver, target, serverOf(target)); // warm-up
    for (let round = 0; round < REPEATS; round++) {
      for (const target of TARGETS) {
        const m = await measure(driver, target, serverOf(target));
        results.get(target)!.push(m.usPerDelivered);
        console.error(
          `[bench] round ${round + 1} ${target}: ${m.deltas.toFixed(0)} deltas x ${SUBSCRIBERS} subscribers, ${m.usPerDelivered.toFixed(1)} µs per delivered delta`,
        );
      }
    }
    console.log(`\n${RUNS} runs streaming, ${PIECES} pieces each at ${RATE} pieces/s in all; ${SUBSCRIBERS} subscribers per run\n`);
    console.log('| target | gateway CPU per delivered delta (median) | runs |');
    console.log('| --- | ---: | --- |');
    for (const [target, xs] of results)
      console.log(`| ${target} | ${median(xs).toFixed(1)} µs | ${xs.map((x) => x.toFixed(1)).join(' / ')} |`);
    const floor = results.get('bare-ws');
    if (floor?.length)
      for (const target of ['direct', 'executed'] as const) {
        const xs = results.get(target);
        if (xs?.length) console.log(`${target} / bare-ws: ${(median(xs) / median(floor)).toFixed(2)}x`);
      }
  } finally {
    await Promise.all(servers.map((s) => s.kill('SIGTERM')));
    await driver?.stop();
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

// The servers measured run compiled, as production runs them (npm run build).
buildRunway();
await main();

/**
 * queued -> in_progress latency and lifecycle throughput, measured from outside.
 *
 * Starts Runway (`src/main.ts`, gateway + worker) in a child process against PostgreSQL,
 * then drives it from this process over 127.0.0.1: createRun over HTTP, status events
 * over graphql-ws. A run's pickup latency is the time between its QUEUED and its
 * IN_PROGRESS event on the same subscription, so delivery cost cancels out.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/queue-latency.ts
 *
 * Bounded: fixed counts and durations; it stops by itself and drops its database.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { createClient, type Client } from 'graphql-ws';
import postgres from 'postgres';
import WebSocket from 'ws';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `runway_bench_${process.pid}`;
const RATES = (process.env.BENCH_RATES ?? '10,50,100,200,400').split(',').map(Number);
const SECONDS_PER_RATE = Number(process.env.BENCH_SECONDS ?? 8);
const THREADS = 600;

async function main() {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, LOG_LEVEL: 'info', DATABASE_URL: url.toString(), PORT: '0', HOST: '127.0.0.1', WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY ?? '32', DATABASE_POOL_SIZE: '20', RATE_LIMIT_MUTATIONS_PER_MINUTE: '0', RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0', WS_MAX_SUBSCRIPTIONS: '1000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        const m = out.match(/on (http:\/\/\S+\/graphql)/);
        if (m) resolve(m[1]!.replace('localhost', '127.0.0.1'));
      });
      child.once('exit', () => reject(new Error(out)));
    });
    await run(endpoint);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

async function gql(endpoint: string, query: string, variables: Record<string, unknown>) {
  const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as any;
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

interface Lane {
  threadId: string;
  busy: boolean;
  queuedAt?: number;
  done?: () => void;
}

async function run(endpoint: string) {
  const { createAssistant } = await gql(endpoint, 'mutation { createAssistant(input: { model: "scripted" }) { id } }', {});
  const assistantId = createAssistant.id as string;
  const ws: Client = createClient({ url: endpoint.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  const latencies: number[] = [];

  // One thread per lane (a thread holds one active run), each watched by a subscription.
  const lanes: Lane[] = [];
  for (let i = 0; i < THREADS; i++) {
    const { createThread } = await gql(endpoint, 'mutation { createThread(input: { messages: [{ role: USER, content: "hello" }] }) { id } }', {});
    const lane: Lane = { threadId: createThread.id, busy: false };
    lanes.push(lane);
    ws.subscribe(
      { query: 'subscription($t: ID!) { threadRunsChanged(threadId: $t) { status } }', variables: { t: lane.threadId } },
      {
        next: (v: any) => {
          const status = v.data.threadRunsChanged.status;
          const now = performance.now();
          if (status === 'QUEUED') lane.queuedAt = now;
          else if (status === 'IN_PROGRESS' && lane.queuedAt !== undefined) latencies.push(now - lane.queuedAt);
          else if (status === 'COMPLETED' || status === 'FAILED') lane.done?.();
        },
        error: (e) => console.error('subscription error', e),
        complete: () => {},
      },
    );
  }
  await new Promise((r) => setTimeout(r, 1000)); // let every subscription register

  async function oneRun(lane: Lane) {
    lane.busy = true;
    const finished = new Promise<void>((r) => (lane.done = r));
    await gql(endpoint, 'mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }', { t: lane.threadId, a: assistantId });
    await finished;
    lane.busy = false;
  }

  console.log('| offered runs/s | runs completed/s | queued -> in_progress p50 | p99 | max |');
  console.log('| ---: | ---: | ---: | ---: | ---: |');
  for (const rate of RATES) {
    latencies.length = 0;
    const started = performance.now();
    const pending: Promise<void>[] = [];
    let skipped = 0;
    for (let i = 0; i < rate * SECONDS_PER_RATE; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const lane = lanes.find((l) => !l.busy);
      if (!lane) {
        skipped++; // every lane busy: the server is not keeping up with this rate
        continue;
      }
      pending.push(oneRun(lane));
    }
    await Promise.all(pending);
    const elapsed = (performance.now() - started) / 1000;
    const sorted = [...latencies].sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
    console.log(
      `| ${rate} | ${(pending.length / elapsed).toFixed(0)}${skipped ? ` (${skipped} not offered)` : ''} | ${q(0.5).toFixed(1)} ms | ${q(0.99).toFixed(1)} ms | ${sorted.at(-1)!.toFixed(1)} ms |`,
    );
  }
  await ws.dispose();
}

await main();

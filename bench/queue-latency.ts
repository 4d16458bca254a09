/**
 * queued -> in_progress latency and lifecycle throughput, measured from outside.
 *
 * Starts Runway (`src/main.ts`) in child processes against PostgreSQL: one process doing
 * both (BENCH_WORKERS=0, the default), or a gateway and BENCH_WORKERS workers. Drives it
 * from this process over 127.0.0.1: createRun over HTTP, status events over graphql-ws.
 * A run's pickup latency is the time between its QUEUED and its IN_PROGRESS event on the
 * same subscription, so delivery cost cancels out. CPU per completed run is read from
 * /proc for each Runway process and for all PostgreSQL processes together.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:queue
 *   BENCH_RATES=10,50,100,200,400 BENCH_SECONDS=8 BENCH_WORKERS=2 WORKER_CONCURRENCY=32
 *   BENCH_PROFILE=/tmp/prof   (the Runway processes run under node --cpu-prof)
 *
 * Bounded: fixed counts and durations; it stops by itself and drops its database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createClient, type Client } from 'graphql-ws';
import postgres from 'postgres';
import WebSocket from 'ws';
import { buildRunway, nodeCommand } from '../test/support/processes.js';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `runway_bench_${process.pid}`;
const RATES = (process.env.BENCH_RATES ?? '10,50,100,200,400').split(',').map(Number);
const SECONDS_PER_RATE = Number(process.env.BENCH_SECONDS ?? 8);
const THREADS = 600;

const WORKERS = Number(process.env.BENCH_WORKERS ?? 0);

/** User + system CPU time of a process, in ms (0 once it is gone). */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks of 10 ms
  } catch {
    return 0;
  }
}

/** CPU time of every PostgreSQL server process on this machine, in ms. */
function postgresCpuMs(): number {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') total += cpuMs(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

interface Started {
  child: ChildProcess;
  role: string;
  url?: string;
}

/**
 * Starts `src/main.ts` with this role; resolves once it logged that it is up. Its log
 * lines go to a file, as in production they go to a collector, not to a pipe this
 * process would have to keep reading.
 */
async function startRunway(role: 'all' | 'gateway' | 'worker', env: Record<string, string>, index: number): Promise<Started> {
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  if (process.env.BENCH_NODE_ARGS) profile.push(...process.env.BENCH_NODE_ARGS.split(' '));
  const logFile = join(tmpdir(), `${dbName}-${role}-${index}.log`);
  const child = spawn(process.execPath, [...profile, ...nodeCommand('src/main.ts', true)], {
    env: { ...process.env, ...env, ROLE: role, LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', openSync(logFile, 'w'), 'inherit'],
  });
  for (let waited = 0; waited < 30_000; waited += 100) {
    if (child.exitCode !== null) throw new Error(`runway ${role} exited with ${child.exitCode}: see ${logFile}`);
    const log = readFileSync(logFile, 'utf8');
    const url = /on (http:\/\/\S+\/graphql)/.exec(log)?.[1]?.replace('localhost', '127.0.0.1');
    if (url) return { child, role, url };
    if (role === 'worker' && log.includes('Runway worker')) return { child, role };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`runway ${role} did not start: see ${logFile}`);
}

async function main() {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const env = {
    DATABASE_URL: url.toString(),
    WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY ?? '32',
    DATABASE_POOL_SIZE: '20',
    RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
    RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0',
    WS_MAX_SUBSCRIPTIONS: '1000',
  };
  const processes: Started[] = [];
  try {
    // BENCH_WORKERS=0: one process does both; otherwise a gateway and that many workers.
    processes.push(await startRunway(WORKERS > 0 ? 'gateway' : 'all', env, 0));
    for (let i = 1; i <= WORKERS; i++) processes.push(await startRunway('worker', env, i));
    await run(processes[0]!.url!, processes);
  } finally {
    for (const p of processes) p.child.kill('SIGTERM');
    await Promise.all(processes.map((p) => new Promise((r) => (p.child.exitCode !== null ? r(null) : p.child.once('exit', r)))));
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

async function run(endpoint: string, processes: Started[]) {
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

  let lastLane = -1;
  function nextIdleLane(): Lane | undefined {
    for (let k = 1; k <= lanes.length; k++) {
      const i = (lastLane + k) % lanes.length;
      if (!lanes[i]!.busy) return lanes[(lastLane = i)];
    }
    return undefined;
  }

  async function oneRun(lane: Lane) {
    lane.busy = true;
    const finished = new Promise<void>((r) => (lane.done = r));
    await gql(endpoint, 'mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }', { t: lane.threadId, a: assistantId });
    await finished;
    lane.busy = false;
  }

  const roles = processes.map((p) => p.role);
  console.log(`| offered runs/s | runs completed/s | queued -> in_progress p50 | p99 | max | CPU ms per run: ${roles.join(' / ')} / PostgreSQL |`);
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const rate of RATES) {
    latencies.length = 0;
    const cpuBefore = processes.map((p) => cpuMs(p.child.pid!));
    const pgBefore = postgresCpuMs();
    const started = performance.now();
    const pending: Promise<void>[] = [];
    let skipped = 0;
    for (let i = 0; i < rate * SECONDS_PER_RATE; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // Round-robin over the idle lanes: 600 conversations growing alike, as users' do
      // (always the first idle lane made one thread hundreds of messages long).
      const lane = nextIdleLane();
      if (!lane) {
        skipped++; // every lane busy: the server is not keeping up with this rate
        continue;
      }
      pending.push(oneRun(lane));
    }
    await Promise.all(pending);
    const elapsed = (performance.now() - started) / 1000;
    const perRun = (ms: number) => (ms / Math.max(1, pending.length)).toFixed(2);
    const cpu = processes.map((p, i) => perRun(cpuMs(p.child.pid!) - cpuBefore[i]!));
    const pgCpu = perRun(postgresCpuMs() - pgBefore);
    const sorted = [...latencies].sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
    console.log(
      `| ${rate} | ${(pending.length / elapsed).toFixed(0)}${skipped ? ` (${skipped} not offered)` : ''} | ${q(0.5).toFixed(1)} ms | ${q(0.99).toFixed(1)} ms | ${sorted.at(-1)!.toFixed(1)} ms | ${cpu.join(' / ')} / ${pgCpu} |`,
    );
  }
  await ws.dispose();
}

// The servers measured run compiled, as production runs them (npm run build).
buildRunway();
await main();

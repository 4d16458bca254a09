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
 * Two measurements:
 * - open loop: runs offered at each of BENCH_RATES per second, round-robin over idle
 *   threads; pickup latency and runs completed per second (which can only fall short of
 *   the rate offered: the last runs' time to finish counts);
 * - saturation (BENCH_SATURATION_SECONDS, 0 to skip): every thread keeps a run going (a
 *   thread's next run is created as soon as its last one completed), so the engine always
 *   has more work than it can take; runs completed per second over the window, measured
 *   after the backlog has formed. That is the server's lifecycle throughput.
 * Before either, BENCH_WARMUP_SECONDS at 100 runs/s, not reported (JIT, first runs on
 * fresh threads).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:queue
 *   BENCH_RATES=10,50,100,200,400 BENCH_SECONDS=8 BENCH_WORKERS=2 WORKER_CONCURRENCY=32
 *   BENCH_SATURATION_SECONDS=10 BENCH_WARMUP_SECONDS=3
 *   BENCH_PROFILE=/tmp/prof   (the Runway processes run under node --cpu-prof)
 *   BENCH_DOCS=0   (print only: leave docs/performance.md as it is)
 *
 * The table is also written into docs/performance.md (bench:queue; bench/results.ts).
 *
 * Bounded: fixed counts and durations; it stops by itself and drops its database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createClient, type Client } from 'graphql-ws';
import postgres from 'postgres';
import WebSocket from 'ws';
import { buildRunway, nodeCommand } from '../test/support/processes.js';
import { resultLines } from './results.js';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `runway_bench_${process.pid}`;
const RATES = (process.env.BENCH_RATES ?? '10,50,100,200,400').split(',').filter(Boolean).map(Number);
const SECONDS_PER_RATE = Number(process.env.BENCH_SECONDS ?? 8);
const SATURATION_SECONDS = Number(process.env.BENCH_SATURATION_SECONDS ?? 10);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 3);
const THREADS = 600;

const WORKERS = Number(process.env.BENCH_WORKERS ?? 0);
const CONCURRENCY = process.env.WORKER_CONCURRENCY ?? '32';
const results = resultLines();

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
    WORKER_CONCURRENCY: CONCURRENCY,
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
    results.record('queue');
  } finally {
    for (const p of processes) p.child.kill('SIGTERM');
    await Promise.all(processes.map((p) => new Promise((r) => (p.child.exitCode !== null ? r(null) : p.child.once('exit', r)))));
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

/**
 * The driver shares the machine's two cores with what it measures, so it posts over
 * node:http with kept-alive connections: fetch (undici) cost it more CPU per run than the
 * gateway spends serving the request.
 */
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function gql(endpoint: string, query: string, variables: Record<string, unknown>): Promise<any> {
  const body = JSON.stringify({ query, variables });
  return new Promise((resolve, reject) => {
    const req = request(
      endpoint,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const answer = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (answer.errors) reject(new Error(JSON.stringify(answer.errors)));
          else resolve(answer.data);
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
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
    const { createThread } = await gql(
      endpoint,
      'mutation { createThread(input: { messages: [{ role: USER, content: "hello" }] }) { id } }',
      {},
    );
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
    await gql(endpoint, 'mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }', {
      t: lane.threadId,
      a: assistantId,
    });
    await finished;
    lane.busy = false;
  }

  const roles = processes.map((p) => p.role);
  const driverCpuMs = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  const cpuNow = () => ({ each: processes.map((p) => cpuMs(p.child.pid!)), postgres: postgresCpuMs(), driver: driverCpuMs() });
  /** CPU ms per run since `before`: each Runway process, PostgreSQL, then this driver. */
  const cpuPerRun = (before: ReturnType<typeof cpuNow>, runs: number) => {
    const after = cpuNow();
    const perRun = (ms: number) => (ms / Math.max(1, runs)).toFixed(2);
    const servers = [...after.each.map((ms, i) => perRun(ms - before.each[i]!)), perRun(after.postgres - before.postgres)];
    return `${servers.join(' / ')} (driver ${perRun(after.driver - before.driver)})`;
  };

  /** Offers `rate` runs per second for `seconds`; resolves when all offered have completed. */
  async function offer(rate: number, seconds: number) {
    const started = performance.now();
    const pending: Promise<void>[] = [];
    let skipped = 0;
    for (let i = 0; i < rate * seconds; i++) {
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
    return { offered: pending.length, skipped, elapsed: (performance.now() - started) / 1000 };
  }

  if (WARMUP_SECONDS > 0) await offer(100, WARMUP_SECONDS);

  const shape = WORKERS > 0 ? `a gateway and ${WORKERS} worker${WORKERS > 1 ? 's' : ''}` : 'one process (ROLE=all)';
  results.print(
    `Runway as ${shape}, WORKER_CONCURRENCY=${CONCURRENCY}, ${THREADS} threads each watched over graphql-ws; ` +
      `${SECONDS_PER_RATE} s per offered rate after ${WARMUP_SECONDS} s of warm-up\n`,
  );
  if (RATES.length) {
    results.print(
      `| offered runs/s | runs completed/s | queued -> in_progress p50 | p99 | max | CPU ms per run: ${roles.join(' / ')} / PostgreSQL (driver) |`,
    );
    results.print('| ---: | ---: | ---: | ---: | ---: | ---: |');
  }
  for (const rate of RATES) {
    latencies.length = 0;
    const cpuBefore = cpuNow();
    const { offered, skipped, elapsed } = await offer(rate, SECONDS_PER_RATE);
    const sorted = [...latencies].sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
    results.print(
      `| ${rate} | ${(offered / elapsed).toFixed(0)}${skipped ? ` (${skipped} not offered)` : ''} | ${q(0.5).toFixed(1)} ms | ${q(0.99).toFixed(1)} ms | ${sorted.at(-1)!.toFixed(1)} ms | ${cpuPerRun(cpuBefore, offered)} |`,
    );
  }

  if (SATURATION_SECONDS > 0) {
    // Every lane loops: a run, and as soon as it completed the next, until the window ends.
    let completed = 0;
    let open = true;
    const loop = async (lane: Lane) => {
      while (open) {
        await oneRun(lane);
        completed++;
      }
    };
    const loops = lanes.map((lane) => loop(lane));
    // The backlog forms first (every lane has a run queued or running), then the window.
    await new Promise((r) => setTimeout(r, 3000));
    const before = { completed, at: performance.now(), cpu: cpuNow() };
    await new Promise((r) => setTimeout(r, SATURATION_SECONDS * 1000));
    const runs = completed - before.completed;
    const seconds = (performance.now() - before.at) / 1000;
    const cpu = cpuPerRun(before.cpu, runs);
    open = false;
    await Promise.all(loops);
    results.print(
      `\nSaturation (${lanes.length} threads, each always with a run queued or running): ` +
        `**${(runs / seconds).toFixed(0)} runs/s completed** over ${seconds.toFixed(1)} s; ` +
        `CPU ms per run ${roles.join(' / ')} / PostgreSQL (driver): ${cpu}`,
    );
  }
  await ws.dispose();
  agent.destroy();
}

// The servers measured run compiled, as production runs them (npm run build).
buildRunway();
await main();

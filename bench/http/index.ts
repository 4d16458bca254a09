/**
 * `npm run bench`: Runway against a bare node:http + postgres.js baseline, side by side.
 *
 * Creates a scratch database on DATABASE_URL's server, seeds it with SQL (BENCH_THREADS
 * threads x BENCH_RUNS_PER_THREAD runs, with messages, steps and events), starts Runway
 * (gateway only, production mode, an API key) and the baseline as child processes, checks
 * that both give the same JSON, then drives each scenario from a separate autocannon
 * process: rounds interleaved (baseline, Runway, Runway, baseline, ...), ratios taken per
 * round, the median reported, with each server's CPU time per request (from /proc).
 * Bounded: it stops by itself and drops its database.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench
 *   BENCH_SECONDS=5 BENCH_ROUNDS=3 BENCH_CONNECTIONS=50 BENCH_SCENARIOS=run,runs,nested
 *   BENCH_PROFILE=/tmp/prof   (Runway runs under node --cpu-prof, profile written there)
 *   BENCH_SOAK_MINUTES=10     (then: sustained run reads for that long, req/s per minute;
 *                              `npm run bench:soak` does only this)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import postgres from 'postgres';
import { openDatabase } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import { body, type Scenario } from './operations.js';
import { BENCH_PROJECT, postgresRunner, seed } from './seed.js';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const THREADS = Number(process.env.BENCH_THREADS ?? 1000);
const RUNS_PER_THREAD = Number(process.env.BENCH_RUNS_PER_THREAD ?? 100);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const SCENARIOS = (process.env.BENCH_SCENARIOS ?? 'run,runs,nested').split(',').filter(Boolean) as Scenario[];
const SOAK_MINUTES = Number(process.env.BENCH_SOAK_MINUTES ?? 0);
const KEY = 'bench-key-0123456789abcdef';
const dbName = `runway_bench_${process.pid}`;
const log = (line: string) => console.error(`[bench] ${line}`);

interface Target {
  name: 'baseline' | 'runway';
  url: string;
  pid: number;
  key?: string;
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  cpuMsPerRequest: number;
  non2xx: number;
  errors: number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS; // utime + stime
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a server process on a free port; resolves once its /health answers. */
async function start(command: string[], env: Record<string, string>, nodeArgs: string[] = []): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  // Its log lines go to a file, as in production they go to a collector, not to a pipe
  // this process would have to keep reading.
  const out = openSync(join(tmpdir(), `${dbName}-${command[0]!.replace(/\W/g, '_')}.log`), 'w');
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', ...command], {
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', out, 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null) throw new Error(`${command[0]} exited with ${child.exitCode}`);
    const ok = await fetch(`${base}/health`).then((r) => r.ok, () => false);
    if (ok) return { child, url: `${base}/graphql` };
    if (waited > 30_000) throw new Error(`${command[0]} did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function post(target: Target, scenario: Scenario, pair: [string, string], first = 20): Promise<unknown> {
  const res = await fetch(target.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(target.key ? { authorization: `Bearer ${target.key}` } : {}) },
    body: body(scenario, pair, first),
  });
  return res.json();
}

function load(target: Target, scenario: Scenario, seconds: number, idsFile: string): Promise<Sample> {
  const before = cpuMs(target.pid);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/http/load.ts', JSON.stringify({ url: target.url, key: target.key, scenario, seconds, connections: CONNECTIONS, idsFile })],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`load exited with ${code}`));
      const r = JSON.parse(out) as { requests: number; rps: number; p50: number; p99: number; non2xx: number; errors: number };
      resolve({ ...r, cpuMsPerRequest: (cpuMs(target.pid) - before) / Math.max(1, r.requests) });
    });
  });
}

/** Sustained `run` reads on Runway alone, a minute at a time: does it stay as fast? */
async function soak(runway: Target, idsFile: string) {
  const minutes: Sample[] = [];
  for (let m = 0; m < SOAK_MINUTES; m++) {
    const s = await load(runway, 'run', 60, idsFile);
    if (s.non2xx || s.errors) throw new Error(`soak minute ${m + 1}: ${s.non2xx} non-2xx, ${s.errors} errors`);
    minutes.push(s);
    log(`soak minute ${m + 1}: ${fmt(s.rps)} req/s, p99 ${s.p99} ms, ${fmt(s.cpuMsPerRequest, 3)} CPU ms/req`);
  }
  const first = minutes[0]!;
  const last = minutes.at(-1)!;
  console.log(`\nSoak: run(threadId, runId), ${CONNECTIONS} connections, ${SOAK_MINUTES} minutes\n`);
  console.log('| minute | req/s | p99 | CPU ms/req |');
  console.log('| ---: | ---: | ---: | ---: |');
  minutes.forEach((s, i) => console.log(`| ${i + 1} | ${fmt(s.rps)} | ${s.p99} ms | ${fmt(s.cpuMsPerRequest, 3)} |`));
  console.log(`\nlast minute / first minute: **${fmt(last.rps / first.rps, 2)}x**`);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (n: number, digits = 0) => n.toFixed(digits);

async function main() {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const databaseUrl = url.toString();
  const children: ChildProcess[] = [];
  try {
    const database = await openDatabase({ url: databaseUrl, poolSize: 2 });
    await migrate(database);
    await database.close();
    const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
    // Run n made at now + n, so that the last is made about now.
    const now = Math.floor(Date.now() / 1000) - THREADS * RUNS_PER_THREAD;
    log(`seeding ${THREADS} threads x ${RUNS_PER_THREAD} runs (with messages and steps)...`);
    const seeded = await seed(postgresRunner(sql), now, THREADS, RUNS_PER_THREAD, log);
    await sql.end();
    const idsFile = join(tmpdir(), `${dbName}-ids.json`);
    writeFileSync(idsFile, JSON.stringify(seeded.runs));

    const runway = await start(['src/main.ts'], {
      DATABASE_URL: databaseUrl,
      ROLE: 'gateway',
      NODE_ENV: 'production',
      API_KEYS: `${KEY}:${BENCH_PROJECT}`,
      LOG_LEVEL: 'info',
      RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
      RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0',
    }, process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []);
    children.push(runway.child);
    const baseline = await start(['bench/http/baseline-server.ts'], { DATABASE_URL: databaseUrl });
    children.push(baseline.child);
    const targets: Target[] = [
      { name: 'baseline', url: baseline.url, pid: baseline.child.pid! },
      { name: 'runway', url: runway.url, pid: runway.child.pid!, key: KEY },
    ];

    // Same JSON from both, or the comparison means nothing.
    for (const scenario of SCENARIOS) {
      const pair = seeded.runs[123]!;
      const [a, b] = await Promise.all(targets.map((t) => post(t, scenario, pair)));
      if (!isDeepStrictEqual(a, b)) throw new Error(`${scenario}: responses differ\nbaseline: ${JSON.stringify(a)}\nrunway:   ${JSON.stringify(b)}`);
    }
    log(`both servers give the same JSON for ${SCENARIOS.join(', ')}`);

    const rows: string[] = [];
    for (const scenario of SCENARIOS) {
      // Warm both (JIT, caches, pools) before anything counts.
      for (const t of targets) await load(t, scenario, 2, idsFile);
      const samples: Record<Target['name'], Sample[]> = { baseline: [], runway: [] };
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) {
          const s = await load(t, scenario, SECONDS, idsFile);
          if (s.non2xx || s.errors) throw new Error(`${t.name} ${scenario}: ${s.non2xx} non-2xx, ${s.errors} errors`);
          samples[t.name].push(s);
          log(`${scenario} round ${round + 1} ${t.name}: ${fmt(s.rps)} req/s, p99 ${s.p99} ms, ${fmt(s.cpuMsPerRequest, 3)} CPU ms/req`);
        }
      }
      const ratio = median(samples.runway.map((r, i) => r.rps / samples.baseline[i]!.rps));
      const p99Ratio = median(samples.runway.map((r, i) => r.p99 / Math.max(1, samples.baseline[i]!.p99)));
      rows.push(
        `| ${scenario} | ${fmt(median(samples.runway.map((s) => s.rps)))} | ${fmt(median(samples.baseline.map((s) => s.rps)))} | **${fmt(ratio, 2)}x** | ${median(samples.runway.map((s) => s.p99))} / ${median(samples.baseline.map((s) => s.p99))} ms (${fmt(p99Ratio, 1)}x) | ${fmt(median(samples.runway.map((s) => s.cpuMsPerRequest)), 3)} / ${fmt(median(samples.baseline.map((s) => s.cpuMsPerRequest)), 3)} |`,
      );
    }
    if (rows.length) {
      console.log(`\nRunway vs bare node:http + postgres.js, ${THREADS * RUNS_PER_THREAD} runs, ${CONNECTIONS} connections, ${ROUNDS} interleaved rounds of ${SECONDS} s (medians)\n`);
      console.log('| scenario | Runway req/s | baseline req/s | ratio | p99 Runway / baseline | CPU ms/req Runway / baseline |');
      console.log('| --- | --- | --- | --- | --- | --- |');
      for (const row of rows) console.log(row);
    }
    if (SOAK_MINUTES > 0) await soak(targets[1]!, idsFile);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

await main();

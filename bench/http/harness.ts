/**
 * What every scenario of `npm run bench` shares: server processes on free ports, one
 * autocannon process per measurement, CPU time from /proc, interleaved rounds, medians.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type postgres from 'postgres';
import { openDatabase, type DatabaseOptions } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import { body, type Ids, type Read, type RestRead, type Scenario } from './operations.js';
import { BENCH_PROJECT } from './seed.js';
import { nodeCommand } from '../../test/support/processes.js';

/** Names this run's scratch databases, directories and log files. */
export const RUN_NAME = `runway_bench_${process.pid}`;
export const KEY = 'bench-key-0123456789abcdef';
export const log = (line: string) => console.error(`[bench] ${line}`);

export interface Settings {
  seconds: number;
  rounds: number;
  connections: number;
}

export interface Target {
  name: string;
  /** The GraphQL endpoint. */
  url: string;
  /** Scheme, host and port: where the REST paths (/v1/...) go. */
  origin: string;
  pid: number;
  key?: string;
}

export interface Sample {
  rps: number;
  p50: number;
  p99: number;
  cpuMsPerRequest: number;
  non2xx: number;
  errors: number;
  /** Responses that were not the expected answer (checked for create only). */
  failed: number;
  /** Threads taken from a create list (create only). */
  used: number;
}

/** What a load process sends. */
export type LoadSpec =
  /** Reads: a random [threadId, runId] pair of the JSON file per request. */
  | { scenario: Read | RestRead; idsFile: string }
  /** createRun: the JSON file's thread ids, each once, from `offset` on. */
  | { scenario: 'create'; threadsFile: string; offset: number; assistantId: string };

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

/** Registers a cleanup: run at the end, last registered first, also when the bench fails. */
export type Defer = (cleanup: () => Promise<void>) => void;

/** A new, migrated database on `serverUrl`'s server, dropped (connections and all) at the end. */
export async function scratchDatabase(admin: postgres.Sql, serverUrl: string, name: string, defer: Defer): Promise<string> {
  await admin.unsafe(`create database ${name}`);
  defer(async () => void (await admin.unsafe(`drop database if exists ${name} with (force)`)));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  await migrated({ url: url.toString(), poolSize: 2 });
  return url.toString();
}

/** Writes `data` as JSON to a file in the temp directory (for the load processes), removed at the end. */
export function scratchFile(name: string, data: unknown, defer: Defer): string {
  const file = join(tmpdir(), `${RUN_NAME}-${name}.json`);
  defer(async () => rmSync(file, { force: true }));
  writeFileSync(file, JSON.stringify(data));
  return file;
}

/** Opens the database, applies Runway's migrations, closes it. */
export async function migrated(options: DatabaseOptions): Promise<void> {
  const database = await openDatabase(options);
  try {
    await migrate(database);
  } finally {
    await database.close();
  }
}

export interface Server {
  child: ChildProcess;
  target: Target;
  stop(): Promise<void>;
}

/** Starts a server process on a free port; resolves once its /health answers. */
async function start(
  name: string,
  label: string,
  command: string[],
  env: Record<string, string>,
  nodeArgs: string[] = [],
  cwd = process.cwd(),
): Promise<Server> {
  const port = await freePort();
  // Its log lines go to a file, as in production they go to a collector, not to a pipe
  // this process would have to keep reading.
  const out = openSync(join(tmpdir(), `${RUN_NAME}-${label}.log`), 'w');
  const child = spawn(process.execPath, [...nodeArgs, ...nodeCommand(command[0]!, true), ...command.slice(1)], {
    cwd,
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', out, 'inherit'],
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // What the process's memory came to (the young generation's size is a node flag: see nodeCommand).
      const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
      if (peak) log(`${label}: peak RSS ${Math.round(Number(peak) / 1024)} MB`);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  };
  const base = `http://127.0.0.1:${port}`;
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null) throw new Error(`${label} exited with ${child.exitCode}`);
    const ok = await fetch(`${base}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { child, target: { name, url: `${base}/graphql`, origin: base, pid: child.pid! }, stop };
    if (waited > 60_000) {
      await stop();
      throw new Error(`${label} did not start`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Runway as in production, gateway only (no worker: created runs stay queued), with an
 * API key and no rate limits. `env` says which database (DATABASE_URL or PGLITE_DIR);
 * `checkout`, which build (another checkout's, built there: BENCH_AGAINST).
 */
export async function startRunway(name: string, label: string, env: Record<string, string>, checkout?: string): Promise<Server> {
  const server = await start(
    name,
    label,
    ['src/main.ts'],
    {
      ROLE: 'gateway',
      NODE_ENV: 'production',
      API_KEYS: `${KEY}:${BENCH_PROJECT}`,
      LOG_LEVEL: 'info',
      RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
      RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0',
      ...env,
    },
    profiling(),
    checkout,
  );
  server.target.key = KEY;
  return server;
}

export function startBaseline(name: string, label: string, databaseUrl: string): Promise<Server> {
  return start(name, label, ['bench/http/baseline-server.ts'], { DATABASE_URL: databaseUrl }, profiling());
}

/**
 * With BENCH_PROFILE, a process runs under `node --cpu-prof`: Runway's and the baseline's, to
 * compare their profiles side by side; BENCH_NODE_ARGS adds node flags to both.
 */
const profiling = () => [
  ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
  // e.g. --trace-gc-nvp: each scavenge's survivors and promotions, in the servers' log files.
  ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
];

export async function post(target: Target, scenario: Scenario, ids: Ids, first = 20): Promise<unknown> {
  const res = await fetch(target.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(target.key ? { authorization: `Bearer ${target.key}` } : {}) },
    body: body(scenario, ids, first),
  });
  return res.json();
}

/** A REST GET's answer: status and body text (the bytes are compared, not only the JSON's value). */
export async function getText(target: Target, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${target.origin}${path}`, { headers: target.key ? { authorization: `Bearer ${target.key}` } : {} });
  return { status: res.status, text: await res.text() };
}

/** One autocannon run against `target`, in a process of its own. */
export function load(target: Target, spec: LoadSpec, seconds: number, connections: number): Promise<Sample> {
  const before = cpuMs(target.pid);
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/http/load.ts',
      JSON.stringify({ url: target.url, origin: target.origin, key: target.key, seconds, connections, ...spec }),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`load exited with ${code}`));
      const r = JSON.parse(out) as Omit<Sample, 'cpuMsPerRequest'> & { requests: number; exhausted: boolean };
      if (r.exhausted) {
        return reject(new Error(`${target.name} ${spec.scenario}: ran out of fresh threads (raise BENCH_CREATE_THREADS)`));
      }
      resolve({ ...r, cpuMsPerRequest: (cpuMs(target.pid) - before) / Math.max(1, r.requests) });
    });
  });
}

/**
 * Warms every target for `warmSeconds`, then measures them in `rounds` rounds, the order
 * alternating (a, b, b, a, ...) so that neither always goes first. Any failed request fails it.
 */
export async function interleaved(
  targets: Target[],
  settings: Settings,
  label: string,
  measure: (target: Target, seconds: number) => Promise<Sample>,
  warmSeconds = 2,
): Promise<Record<string, Sample[]>> {
  // Warm both (JIT, caches, pools) before anything counts.
  for (const t of targets) await measure(t, warmSeconds);
  const samples: Record<string, Sample[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let round = 0; round < settings.rounds; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const s = await measure(t, settings.seconds);
      if (s.non2xx || s.errors || s.failed) {
        throw new Error(`${t.name} ${label}: ${s.non2xx} non-2xx, ${s.errors} errors, ${s.failed} unexpected answers`);
      }
      samples[t.name]!.push(s);
      log(
        `${label} round ${round + 1} ${t.name}: ${fmt(s.rps)} req/s, p50 ${s.p50} ms, p99 ${s.p99} ms, ${fmt(s.cpuMsPerRequest, 3)} CPU ms/req`,
      );
    }
  }
  return samples;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
export const fmt = (n: number, digits = 0) => n.toFixed(digits);
/** The median of one measure over samples. */
export const med = (samples: Sample[], pick: (s: Sample) => number) => median(samples.map(pick));
/** The median over rounds of a's measure / b's in the same round. */
export const medianRatio = (a: Sample[], b: Sample[], pick: (s: Sample) => number) =>
  median(a.map((s, i) => pick(s) / Math.max(1e-9, pick(b[i]!))));

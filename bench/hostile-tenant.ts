/**
 * One tenant's hostile runs against another tenant's echo runs, on ONE Runway process
 * (ROLE=all, compiled, WORKER_CONCURRENCY=8) on PostgreSQL, driven from this process
 * over 127.0.0.1.
 *
 * Project B creates echo runs (the scripted model) at BENCH_RATE per second, each on a
 * fresh thread, and times each from createRun to its COMPLETED event (runStatusChanged
 * over graphql-ws). Two phases of BENCH_SECONDS each: B alone, then B while project A
 * keeps BENCH_HOSTILE runs in flight, each on a thread whose message is one word of
 * BENCH_HOSTILE_CHARS random CJK characters (the slowest kind for the tokenizer; a new
 * word every run, so no cache helps), with maxPromptTokens set so the worker counts it
 * too. Throughout, /health is asked every 20 ms, one request at a time: its longest
 * answer is the longest stall of Runway's event loop as a client sees it.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:hostile
 *   BENCH_SECONDS=15 BENCH_RATE=10 BENCH_HOSTILE=2 BENCH_HOSTILE_CHARS=256000
 *
 * Bounded: fixed durations (a run not completed 30 s after the phase ends counts as not
 * completed); it stops by itself and drops its database.
 */
import postgres from 'postgres';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { buildRunway, startRunwayProcess, type RunwayProcess } from '../test/support/processes.js';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `runway_bench_hostile_${process.pid}`;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const RATE = Number(process.env.BENCH_RATE ?? 10);
const HOSTILE = Number(process.env.BENCH_HOSTILE ?? 2);
const HOSTILE_CHARS = Number(process.env.BENCH_HOSTILE_CHARS ?? 256_000);
const GRACE_MS = 30_000;
const KEY_A = 'bench-hostile-project-a-0123456789';
const KEY_B = 'bench-victim-project-b-0123456789';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : NaN;
}

let seed = 17;
function hostileWord(length: number): string {
  const codes = new Uint16Array(length);
  for (let i = 0; i < length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    codes[i] = 0x4e00 + (seed % 20_000);
  }
  return Buffer.from(codes.buffer).toString('utf16le');
}

class Tenant {
  readonly ws: Client;
  constructor(
    private readonly endpoint: string,
    private readonly key: string,
  ) {
    this.ws = createClient({
      url: endpoint.replace('http', 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${key}` },
    });
  }

  /** A query over HTTP; one that has no answer by `deadline` (a frozen server) throws. */
  async gql(query: string, variables: Record<string, unknown> = {}, deadline = performance.now() + GRACE_MS): Promise<any> {
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.key}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(Math.max(1, Math.ceil(deadline - performance.now()))),
    });
    const answer = (await res.json()) as { data?: any; errors?: unknown };
    if (answer.errors) throw new Error(JSON.stringify(answer.errors).slice(0, 500));
    return answer.data;
  }

  /** A run on a new thread with this message: ms from createRun to COMPLETED, or undefined past the deadline. */
  async timedRun(assistantId: string, content: string, input: Record<string, unknown>, deadline: number): Promise<number | undefined> {
    let runId: string;
    let started: number;
    try {
      const { createThread } = await this.gql(
        'mutation($c: String!) { createThread(input: { messages: [{ role: USER, content: $c }] }) { id } }',
        { c: content },
        deadline,
      );
      started = performance.now();
      const { createRun } = await this.gql(
        'mutation($t: ID!, $input: CreateRunInput!) { createRun(threadId: $t, input: $input) { id } }',
        { t: createThread.id, input: { assistantId, ...input } },
        deadline,
      );
      runId = createRun.id;
    } catch {
      return undefined;
    }
    return new Promise((resolve) => {
      let stop = () => {};
      const timer = setTimeout(() => (stop(), resolve(undefined)), Math.max(0, deadline - performance.now()));
      stop = this.ws.subscribe(
        { query: 'subscription($r: ID!) { runStatusChanged(runId: $r) { status } }', variables: { r: runId } },
        {
          next: (v: any) => {
            const status = v.data?.runStatusChanged?.status;
            if (status === 'COMPLETED') {
              clearTimeout(timer);
              resolve(performance.now() - started);
            } else if (['FAILED', 'CANCELLED', 'EXPIRED', 'INCOMPLETE'].includes(status)) {
              clearTimeout(timer);
              resolve(undefined);
            }
          },
          error: () => (clearTimeout(timer), resolve(undefined)),
          complete: () => {},
        },
      );
    });
  }
}

interface Phase {
  name: string;
  latencies: number[];
  notCompleted: number;
  hostileCompleted: number;
  hostileMs: number[];
  longestHealth: number;
}

async function phase(name: string, endpoint: string, a: Tenant, b: Tenant, ids: { a: string; b: string }, hostile: number): Promise<Phase> {
  const result: Phase = { name, latencies: [], notCompleted: 0, hostileCompleted: 0, hostileMs: [], longestHealth: 0 };
  const end = performance.now() + SECONDS * 1000;
  const deadline = end + GRACE_MS;
  let probing = true;
  const health = (async () => {
    const url = endpoint.replace(/\/graphql$/, '/health');
    while (probing) {
      const started = performance.now();
      // A frozen process does not answer at all: stop waiting at the phase's deadline.
      await fetch(url, { signal: AbortSignal.timeout(Math.max(1, Math.ceil(deadline - started))) })
        .then((r) => r.arrayBuffer())
        .catch(() => {});
      result.longestHealth = Math.max(result.longestHealth, performance.now() - started);
      await sleep(20);
    }
  })();
  const hostiles = Array.from({ length: hostile }, async () => {
    while (performance.now() < end) {
      const ms = await a.timedRun(ids.a, hostileWord(HOSTILE_CHARS), { maxPromptTokens: 1_000_000 }, deadline);
      if (ms === undefined) break;
      result.hostileCompleted++;
      result.hostileMs.push(ms);
    }
  });
  const victims: Promise<void>[] = [];
  for (let next = performance.now(); next < end; next += 1000 / RATE) {
    await sleep(Math.max(0, next - performance.now()));
    victims.push(
      b.timedRun(ids.b, 'Hello', {}, deadline).then((ms) => {
        if (ms === undefined) result.notCompleted++;
        else result.latencies.push(ms);
      }),
    );
  }
  await Promise.all(victims);
  await Promise.all(hostiles);
  probing = false;
  await health;
  result.latencies.sort((x, y) => x - y);
  return result;
}

async function main() {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  let runway: RunwayProcess | undefined;
  try {
    runway = await startRunwayProcess(
      {
        DATABASE_URL: url.toString(),
        ROLE: 'all',
        WORKER_CONCURRENCY: '8',
        API_KEYS: `${KEY_A}:projectA,${KEY_B}:projectB`,
        RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
        RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0',
        MAX_BODY_BYTES: String(4 * 1024 * 1024),
      },
      [],
      true,
    );
    const endpoint = runway.url!;
    const a = new Tenant(endpoint, KEY_A);
    const b = new Tenant(endpoint, KEY_B);
    const create = 'mutation { createAssistant(input: { model: "scripted" }) { id } }';
    const ids = { a: (await a.gql(create)).createAssistant.id, b: (await b.gql(create)).createAssistant.id };
    // Warm-up, not reported.
    await Promise.all(Array.from({ length: 20 }, () => b.timedRun(ids.b, 'Hello', {}, performance.now() + GRACE_MS)));

    const phases = [
      await phase("B's echo runs alone", endpoint, a, b, ids, 0),
      await phase(
        `B's echo runs while A keeps ${HOSTILE} runs of a ${HOSTILE_CHARS.toLocaleString('en')}-character word in flight`,
        endpoint,
        a,
        b,
        ids,
        HOSTILE,
      ),
    ];
    console.log(`\nOne Runway process (WORKER_CONCURRENCY=8), ${SECONDS} s per phase, B at ${RATE} runs/s:\n`);
    console.log(
      '| phase | B runs completed | created -> COMPLETED p50 | p99 | max | B not completed | A runs completed (each, p50) | longest /health |',
    );
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const p of phases) {
      const hostileP50 = percentile(
        [...p.hostileMs].sort((x, y) => x - y),
        50,
      );
      console.log(
        `| ${p.name} | ${p.latencies.length} | ${percentile(p.latencies, 50).toFixed(0)} ms | ${percentile(p.latencies, 99).toFixed(0)} ms | ` +
          `${(p.latencies.at(-1) ?? NaN).toFixed(0)} ms | ${p.notCompleted} | ${p.hostileCompleted}${p.hostileMs.length ? ` (${hostileP50.toFixed(0)} ms)` : ''} | ${p.longestHealth.toFixed(0)} ms |`,
      );
    }
    await a.ws.dispose();
    await b.ws.dispose();
  } finally {
    // A process whose event loop is frozen handles SIGTERM only once it thaws.
    runway?.child.kill('SIGTERM');
    await Promise.race([runway?.exited, sleep(10_000)]);
    await runway?.kill('SIGKILL');
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

// Runway runs compiled, as production runs it (npm run build).
buildRunway();
await main();

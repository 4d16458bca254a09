/**
 * Token streaming end to end: a model's tokens, as a worker process receives them, to
 * graphql-ws subscribers of `runEvents` on a gateway process; against a bare `ws` floor
 * fed by the same announcements; and a resume check. Once per transport: PostgreSQL
 * NOTIFY, then Redis (REDIS_URL).
 *
 * Topology (all on 127.0.0.1): a worker process (ROLE=worker, compiled), a gateway
 * process (ROLE=gateway, compiled), PostgreSQL (a scratch database made here and dropped
 * at the end), a stand-in model endpoint in a process of its own
 * (bench/stream/model-server.ts: the real Chat Completions SSE wire format, OPENAI_BASE_URL
 * points the worker at it), and this process: the subscribers (one websocket each,
 * bench/stream/ws-client.ts) and the driver that creates the runs (createThreadAndRun
 * through Runway's own run service, built in this process with `buildApp`, so that the
 * gateway's CPU is the subscribers' alone).
 *
 * Load: BENCH_RUNS (200) runs streaming at once, each answer BENCH_TOKENS (200) tokens,
 * one SSE chunk every BENCH_TOKEN_MS (40) ms: 25 tokens/s per run, 5,000 tokens/s in all;
 * BENCH_SUBSCRIBERS_PER_RUN (5) subscribers per run, 1,000 in all, each selecting
 * `__typename ... on MessageDeltaEvent { index text }` of runEvents (a chat UI's
 * selection). A lane per run slot: a new thread and run, its subscribers subscribe, and
 * once the run completed the next one starts; the first runs are 1..200 tokens long, so
 * that the runs end spread over time, not all at once.
 *
 * Latency: every chunk's content is its send time (`⟨123456.7⟩`: ms on the clock every
 * process of this machine shares, modulo 1,000 s, so that a token is not six times as
 * long as a real one); the subscriber parses every one out of each
 * delta (a delta carries whatever one announcement of the worker took: one token or several)
 * and takes its arrival time minus the send time. On loopback, the stand-in's write is
 * read by the worker within a fraction of a millisecond (unless the worker's event loop
 * is busy: that wait is part of what is measured), so this is "token received by the
 * worker -> delta at the subscriber". Tokens sent before the subscriber subscribed (they
 * reach it in the run's first delta, the text so far) are not counted as latency; it is
 * also given without the tokens of each subscription's first delta (live delivery alone,
 * not a subscription's start). A plain listener on the transport in this process times
 * the announcements too: up to there is the worker's and the database's share.
 *
 * Phases, per transport:
 * - `runway`: BENCH_WARMUP_SECONDS (5), then BENCH_SECONDS (25) measured, then the runs
 *   under way finish (not measured). Deltas delivered per second, latency p50 / p99 /
 *   max, the gateway's CPU (user + sys, /proc) per delivered delta: the median of
 *   BENCH_SLICE_SECONDS (5) slices of the window, with their range; every process's CPU
 *   over the window. Integrity: each subscriber's deltas, joined in order (each must
 *   start where the text so far ends), against the final message text read from the
 *   database once the run completed.
 * - `resume`: the same load, plus a subscriber per run that drops its connection
 *   (terminate, no close handshake) 0.3-2.5 s after each (re)subscription's first event, reconnects
 *   after 0-100 ms and resubscribes with `after` = the last cursor it received; until
 *   BENCH_RESUMES (1,000) drops in all. Its text, joined the same way, against the final
 *   text.
 * - `bare-ws`: the gateway stopped, the floor (bench/stream/bare-ws-server.ts: a `ws`
 *   server on the same NOTIFY channel or Redis channel, Runway's event codec, one frame
 *   per delta per subscriber, no GraphQL) gets the same subscribers and load. Its CPU per
 *   delta is the floor; the gateway's over it is the ratio reported (target: <= 1.5x).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 npm run bench:stream
 *   BENCH_TRANSPORTS=notify,redis   BENCH_RUNS=200 BENCH_SUBSCRIBERS_PER_RUN=5 BENCH_TOKENS=200 BENCH_TOKEN_MS=40
 *   BENCH_WARMUP_SECONDS=5 BENCH_SECONDS=25 BENCH_SLICE_SECONDS=5 BENCH_RESUMES=1000
 *   BENCH_PHASES=runway,resume,bare-ws   (which phases to run; they run in this order)
 *   BENCH_PROFILE=/tmp/prof   (a CPU profile of the gateway and the floor over the measured window, through
 *                              the inspector, and their top functions by self time)
 *   BENCH_DOCS=0   (print only: leave docs/performance.md as it is)
 *
 * The tables are also written into docs/performance.md (bench:stream; bench/results.ts).
 * Bounded: fixed durations (about 2.5 minutes per transport), every wait with a timeout;
 * it stops by itself, and stops its processes and drops its database also on failure or
 * Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import WebSocket from 'ws';
import { Redis } from 'ioredis';
import { buildApp, type App } from '../src/app.js';
import { createLogger } from '../src/log.js';
import { decodeEvents } from '../src/realtime/event-codec.js';
import { EVENTS_CHANNEL } from '../src/realtime/transport.js';
import { buildRunway, nodeCommand, startRunwayProcess, startServerProcess, type RunwayProcess } from '../test/support/processes.js';
import { resultLines } from './results.js';
import { GraphqlSocket, wallNow } from './stream/ws-client.js';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TRANSPORTS = (process.env.BENCH_TRANSPORTS ?? 'notify,redis').split(',').map((t) => {
  if (t !== 'notify' && t !== 'redis') throw new Error(`BENCH_TRANSPORTS: unknown transport '${t}' (known: notify, redis)`);
  return t;
});
const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const PER_RUN = Number(process.env.BENCH_SUBSCRIBERS_PER_RUN ?? 5);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 200);
const TOKEN_MS = Number(process.env.BENCH_TOKEN_MS ?? 40);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 25);
const SLICE_SECONDS = Number(process.env.BENCH_SLICE_SECONDS ?? 5);
const RESUMES = Number(process.env.BENCH_RESUMES ?? 1000);
const PROFILE = process.env.BENCH_PROFILE;
const PHASE_NAMES = ['runway', 'resume', 'bare-ws'] as const;
const PHASES = new Set(
  (process.env.BENCH_PHASES ?? PHASE_NAMES.join(',')).split(',').map((p) => {
    if (!PHASE_NAMES.includes(p as (typeof PHASE_NAMES)[number]))
      throw new Error(`BENCH_PHASES: unknown phase '${p}' (known: ${PHASE_NAMES.join(', ')})`);
    return p;
  }),
);
/** A run (and so a subscription) that has not ended after this is given up on. */
const RUN_TIMEOUT_MS = 60_000;
/** The resume phase ends after this even if fewer drops were made. */
const RESUME_PHASE_MAX_MS = 90_000;

const results = resultLines();
const log = (line: string) => console.error(`[bench] ${line}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A chat UI's selection: the text as it comes, nothing else. */
const DELTAS = `subscription($t: ID!, $r: ID!) { runEvents(threadId: $t, runId: $r) { __typename ... on MessageDeltaEvent { index text } } }`;
/** The resuming subscriber's: the same, and every event's cursor (and whether the message completed). */
const RESUMING = `subscription($t: ID!, $r: ID!, $after: String) { runEvents(threadId: $t, runId: $r, after: $after) {
  __typename cursor ... on MessageDeltaEvent { index text } ... on MessageEvent { kind } } }`;
const STAMP = /⟨(\d+\.\d)⟩/g;

/** The send times of the tokens in `text`, a delta that arrived at `at` (wallNow): a stamp is the time modulo 1,000 s. */
function* readStamps(text: string, at: number): Generator<number> {
  for (const m of text.matchAll(STAMP)) yield at - ((((at - Number(m[1])) % 1e6) + 1e6) % 1e6);
}

// ---------------------------------------------------------------------------------------
// CPU time, from /proc

/** User + system CPU time of a process, in ms (0 once it is gone). */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks of 10 ms
  } catch {
    return 0;
  }
}

/** The pids of processes named `comm` (redis-server: the one Redis, shared with whatever else uses it). */
function pidsNamed(comm: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm;
      } catch {
        return false;
      }
    })
    .map(Number);
}

const selfCpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/** The processes whose CPU a phase reports, by name. */
type Watched = Record<string, () => number[]>;

function cpuSnapshot(watched: Watched): Map<string, Map<number, number>> {
  const snapshot = new Map<string, Map<number, number>>();
  for (const [name, pids] of Object.entries(watched)) snapshot.set(name, new Map(pids().map((pid) => [pid, cpuMs(pid)])));
  snapshot.set('bench process', new Map([[0, selfCpuMs()]]));
  return snapshot;
}

/** CPU ms spent between two snapshots, per name: over the processes present in both (a pool's backends come and go). */
function cpuSpent(before: ReturnType<typeof cpuSnapshot>, after: ReturnType<typeof cpuSnapshot>): Map<string, number> {
  const spent = new Map<string, number>();
  for (const [name, now] of after) {
    const then = before.get(name)!;
    let ms = 0;
    for (const [pid, v] of now) if (then.has(pid)) ms += v - then.get(pid)!;
    spent.set(name, ms);
  }
  return spent;
}

// ---------------------------------------------------------------------------------------
// Profiles, through the inspector

async function inspector(server: RunwayProcess) {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(server.stderr())?.[1];
  if (!url) throw new Error('the server has no inspector');
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let id = 0;
  const call = (method: string, params?: unknown) =>
    new Promise<any>((resolve) => {
      const mine = ++id;
      const onMessage = (data: WebSocket.RawData) => {
        const message = JSON.parse(String(data));
        if (message.id !== mine) return;
        socket.off('message', onMessage);
        resolve(message.result);
      };
      socket.on('message', onMessage);
      socket.send(JSON.stringify({ id: mine, method, params }));
    });
  return { call, close: () => socket.close() };
}

/** Starts profiling `server` (with BENCH_PROFILE); the function returned stops, saves and summarizes. */
async function profile(server: RunwayProcess, name: string): Promise<() => Promise<void>> {
  if (!PROFILE) return async () => {};
  const session = await inspector(server);
  await session.call('Profiler.enable');
  await session.call('Profiler.setSamplingInterval', { interval: 500 });
  await session.call('Profiler.start');
  return async () => {
    const { profile } = await session.call('Profiler.stop');
    session.close();
    mkdirSync(PROFILE, { recursive: true });
    const file = join(PROFILE, `stream-${name}-${Date.now()}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    log(`profile: ${file}`);
    console.log(`\nTop functions by self time, ${name} (${file}):`);
    for (const line of topFunctions(profile, 25)) console.log(`  ${line}`);
    console.log(`Self time by package (node's own code by the function's caller's package):`);
    for (const line of byPackage(profile, 12)) console.log(`  ${line}`);
  };
}

/**
 * Self time by where the code comes from: a package of node_modules, a folder of Runway's
 * own (dist/src/...), the garbage collector, idle; node's own functions (socket writes,
 * streams, buffers) are counted to the nearest caller that is not node's.
 */
function byPackage(profile: any, count: number): string[] {
  const byNode = new Map<number, any>(profile.nodes.map((n: any) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const origin = (url: string): string | undefined => {
    if (!url || url.startsWith('node:')) return undefined;
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
    if (pkg) return pkg;
    const own = /\/dist\/((?:src|bench)\/[^/]+)/.exec(url)?.[1];
    return own ? `runway ${own}` : url;
  };
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((nodeId: number, i: number) => {
    const dt = profile.timeDeltas[i] ?? 0;
    let id: number | undefined = nodeId;
    let key: string | undefined;
    const name = byNode.get(nodeId)!.callFrame.functionName;
    if (['(garbage collector)', '(idle)', '(program)'].includes(name)) key = name;
    while (!key && id !== undefined) {
      key = origin(byNode.get(id)!.callFrame.url);
      id = parent.get(id);
    }
    key ??= '(node, no caller)';
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}`);
}

/** The functions a profile spent most of its samples in, by self time. */
function topFunctions(profile: any, count: number): string[] {
  const byNode = new Map<number, any>(profile.nodes.map((n: any) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((nodeId: number, i: number) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const frame = byNode.get(nodeId)!.callFrame;
    const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}`);
}

/** A process's log lines (stdout), kept in a file for a look afterwards. */
function keepLog(server: RunwayProcess, name: string): void {
  const file = join(tmpdir(), `${name}.log`);
  writeFileSync(file, server.stdout());
  log(`${name}'s log: ${file}`);
}

/**
 * With BENCH_PROFILE: what the sessions of the bench's database are doing, sampled every
 * 100 ms (state and wait event, and the statement's start); the function returned stops
 * and prints the most frequent.
 */
function sampleWaits(admin: postgres.Sql, dbName: string): () => Promise<void> {
  if (!PROFILE) return async () => {};
  const seen = new Map<string, number>();
  let samples = 0;
  let running = true;
  const sampling = (async () => {
    while (running) {
      const rows = await admin<{ what: string }[]>`
        select concat_ws(' | ', state, wait_event_type || ':' || wait_event, left(regexp_replace(query, '\s+', ' ', 'g'), 70)) as what
        from pg_stat_activity where datname = ${dbName} and pid <> pg_backend_pid() and state <> 'idle'`;
      samples++;
      for (const { what } of rows) seen.set(what, (seen.get(what) ?? 0) + 1);
      await sleep(100);
    }
  })();
  return async () => {
    running = false;
    await sampling;
    console.log(`\nBusy sessions of the bench database, sampled ${samples} times (mean sessions in each state):`);
    for (const [what, n] of [...seen].sort((a, b) => b[1] - a[1]).slice(0, 12))
      console.log(`  ${(n / samples).toFixed(2).padStart(6)}  ${what}`);
  };
}

// ---------------------------------------------------------------------------------------
// The model stand-in

async function startModel(): Promise<{ baseURL: string; child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, nodeCommand('bench/stream/model-server.ts', true), {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', TOKENS: String(TOKENS), TOKEN_MS: String(TOKEN_MS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const baseURL = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /model on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`the model stand-in exited with ${code}: ${out}`)));
  });
  return {
    baseURL,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------------------
// What a phase counts

class Tally {
  /** Receipt minus send time of every token received in the window, ms. */
  readonly latencies: number[] = [];
  deltas = 0;
  tokens = 0;
  /** The same, of the tokens in deltas after a subscription's first (live delivery, not the subscription's start). */
  readonly liveLatencies: number[] = [];
  /** Send time to the moment a plain listener in this process heard the token announced (NOTIFY or Redis), ms. */
  readonly announced: number[] = [];
  /** Tokens in the window that were sent before their subscriber subscribed. */
  tokensBeforeSubscribing = 0;
  readonly deltasPerSlice: number[] = [];
  /** Subscriptions followed to their run's end, and those whose text was not the final text. */
  checked = 0;
  differing = 0;
  /** Subscriptions made after their run had ended (see LATE): not checked. */
  late = 0;
  runs = 0;
  runsNotCompleted = 0;
  stuck = 0;
  readonly errors = new Map<string, number>();
  /** The measured window, on wallNow's clock. */
  from = Infinity;
  to = Infinity;

  constructor(readonly sliceMs: number) {}

  /** `first`: the subscription's first delta (the text so far, as the subscription started). */
  delta(text: string, at: number, subscribedAt: number, first: boolean): void {
    if (at < this.from || at >= this.to) return;
    this.deltas++;
    const slice = Math.floor((at - this.from) / this.sliceMs);
    this.deltasPerSlice[slice] = (this.deltasPerSlice[slice] ?? 0) + 1;
    for (const sent of readStamps(text, at)) {
      this.tokens++;
      if (sent < subscribedAt) this.tokensBeforeSubscribing++;
      else {
        this.latencies.push(at - sent);
        if (!first) this.liveLatencies.push(at - sent);
      }
    }
  }

  /** Announcements heard in the window that carried deltas, and the deltas they carried. */
  announcements = 0;
  announcedDeltas = 0;
  /** Of them, deltas announced without their text (a piece over 1,500 bytes: every subscriber reads it from the row). */
  uncarried = 0;

  /** An announcement's deltas as a plain listener on the transport heard them: how long after their tokens were sent. */
  heard(texts: string[], uncarried: number, at: number): void {
    if (at < this.from || at >= this.to || texts.length + uncarried === 0) return;
    this.announcements++;
    this.announcedDeltas += texts.length + uncarried;
    this.uncarried += uncarried;
    for (const text of texts) for (const sent of readStamps(text, at)) this.announced.push(at - sent);
  }

  /** Says why a subscriber's text was wrong (the first few, on stderr). */
  explain(why: string): void {
    if (++this.explained <= 10) log(`text differs: ${why}`);
  }
  private explained = 0;

  error(what: unknown): void {
    const e = what as any;
    const key = String(e?.[0]?.extensions?.code ?? e?.[0]?.message ?? e?.message ?? e);
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
  }
}

/** Where a subscriber's text and the final text part. */
function difference(runId: string, text: string, final: string | undefined): string {
  if (final === undefined) return `${runId}: no final text`;
  let i = 0;
  while (i < text.length && text[i] === final[i]) i++;
  return `${runId}: ${text.length} characters against ${final.length}, the first difference at ${i}: ${JSON.stringify(text.slice(i, i + 40))} against ${JSON.stringify(final.slice(i, i + 40))}`;
}

/** The final text of a run's answer (and whether it completed), read from the database. */
type FinalText = (runId: string) => Promise<{ status: string; text: string | undefined }>;

/**
 * A subscription made after its run had ended: it gets the run's final status alone and
 * completes (the API's answer then: the text is the message's, read as such), so it has
 * no text to compare.
 */
const LATE = Symbol('subscribed after the run ended');

/**
 * One subscriber of one run, to the run's end: its text (the deltas joined), or undefined
 * when it failed, was cut, or a delta did not start where the text so far ended; LATE.
 */
function follow(socket: GraphqlSocket, threadId: string, runId: string, tally: Tally): Promise<string | undefined | typeof LATE> {
  return new Promise((resolve) => {
    let text = '';
    let broken = false;
    let events = 0;
    let statusEvents = 0;
    const subscribedAt = wallNow();
    const timer = setTimeout(() => {
      tally.stuck++;
      socket.complete(id);
      resolve(undefined);
    }, RUN_TIMEOUT_MS);
    const id = socket.subscribe(
      DELTAS,
      { t: threadId, r: runId },
      {
        next(payload, at) {
          if (payload.errors) return tally.error(payload.errors);
          const e = payload.data?.runEvents;
          events++;
          if (e?.__typename === 'RunStatusEvent') statusEvents++;
          if (e?.__typename !== 'MessageDeltaEvent') return;
          if (e.index !== text.length && !broken) {
            broken = true;
            tally.explain(`${runId}: a delta at index ${e.index} after ${text.length} characters`);
          }
          text += e.text;
          tally.delta(e.text, at, subscribedAt, text.length === e.text.length);
        },
        error(errors) {
          clearTimeout(timer);
          tally.error(errors);
          resolve(undefined);
        },
        complete() {
          clearTimeout(timer);
          resolve(events === 1 && statusEvents === 1 ? LATE : broken ? undefined : text);
        },
      },
    );
  });
}

interface ResumeCount {
  /** Drops made, each followed by a resume with the last cursor received. */
  drops: number;
  /** Of them, while the message was being written: some text received, its COMPLETED not yet. */
  midMessage: number;
  checked: number;
  differing: number;
  /** Resuming subscribers whose first subscription came after their run had ended (see LATE). */
  late: number;
}

/**
 * A subscriber that drops its connection (no close handshake) at a random moment 0.3-2.5 s
 * after each (re)subscription delivered its first event, reconnects after 0-100 ms and
 * resumes with the last cursor it received, to the run's end: its text, or undefined as
 * for {@link follow}; LATE.
 */
async function followResuming(
  url: string,
  threadId: string,
  runId: string,
  tally: Tally,
  count: ResumeCount,
): Promise<string | undefined | typeof LATE> {
  let text = '';
  let cursor: string | undefined;
  let broken = false;
  let messageDone = false;
  let events = 0;
  let statusEvents = 0;
  const lastEvents: string[] = [];
  const deadline = performance.now() + RUN_TIMEOUT_MS;
  for (;;) {
    const socket = await GraphqlSocket.open(url).catch((error: unknown) => (tally.error(error), undefined));
    if (!socket) return undefined;
    const outcome = await new Promise<'complete' | 'failed' | 'drop'>((resolve) => {
      let settled = false;
      let dropTimer: NodeJS.Timeout | undefined;
      const finish = (o: 'complete' | 'failed' | 'drop') => {
        if (settled) return;
        settled = true;
        clearTimeout(dropTimer);
        clearTimeout(deadlineTimer);
        resolve(o);
      };
      const drop = () => {
        if (count.drops >= RESUMES) return; // enough: this one follows to the end
        count.drops++;
        if (text.length > 0 && !messageDone) count.midMessage++;
        finish('drop');
      };
      const deadlineTimer = setTimeout(
        () => {
          tally.stuck++;
          const at = cursor && Buffer.from(cursor, 'base64url').toString();
          tally.explain(
            `resuming: ${runId}: no end in ${RUN_TIMEOUT_MS / 1000} s, ${text.length} characters, cursor ${at}; last: ${lastEvents.join('; ')}`,
          );
          finish('failed');
        },
        Math.max(0, deadline - performance.now()),
      );
      socket.subscribe(
        RESUMING,
        { t: threadId, r: runId, after: cursor ?? null },
        {
          next(payload) {
            if (settled) return;
            if (payload.errors) {
              tally.error(payload.errors);
              return finish('failed');
            }
            dropTimer ??= setTimeout(drop, 300 + Math.random() * 2200);
            const e = payload.data.runEvents;
            // The last few events, to say where a resumer that never ends stood.
            lastEvents.push(
              `${e.__typename} ${e.kind ?? ''}${e.index ?? ''}+${e.text?.length ?? ''} at ${performance.now().toFixed(0)} ms`,
            );
            if (lastEvents.length > 6) lastEvents.shift();
            cursor = e.cursor;
            events++;
            if (e.__typename === 'RunStatusEvent') statusEvents++;
            if (e.__typename === 'MessageEvent' && e.kind !== 'CREATED') messageDone = true;
            if (e.__typename !== 'MessageDeltaEvent') return;
            if (e.index !== text.length && !broken) {
              broken = true;
              tally.explain(`resuming: ${runId}: a delta at index ${e.index} after ${text.length} characters`);
            }
            text += e.text;
          },
          error(errors) {
            if (settled) return;
            tally.error(errors);
            finish('failed');
          },
          complete: () => finish('complete'),
        },
      );
    });
    socket.terminate();
    if (outcome === 'complete' && events === 1 && statusEvents === 1) return LATE;
    if (outcome !== 'drop') return outcome === 'complete' && !broken ? text : undefined;
    await sleep(Math.random() * 100);
  }
}

// ---------------------------------------------------------------------------------------
// Phases

interface Setup {
  driver: App;
  assistantId: string;
  finalText: FinalText;
  /** The processes whose CPU is reported. */
  watched: Watched;
  /** Transactions committed in the bench's database so far (pg_stat_database). */
  commits(): Promise<number>;
  /** Looks the processes up again (a pool opens connections as it needs them). */
  refreshWatched(): Promise<void>;
  /** Where the transport's plain listener in this process counts what it hears (undefined: nowhere). */
  listenInto(tally: Tally | undefined): void;
  /** The worker process (profiled too, with BENCH_PROFILE). */
  worker: RunwayProcess;
  /** With BENCH_PROFILE: samples what the bench database's sessions wait on; the function returned prints it. */
  sampleWaits(): () => Promise<void>;
}

interface PhaseResult {
  target: 'runway' | 'bare-ws';
  tally: Tally;
  /** CPU ms over the window, per process name. */
  cpu: Map<string, number>;
  /** Transactions committed per second in the bench's database over the window (statistics lag by up to half a second). */
  commitsPerSecond: number;
  /** The measured server's CPU µs per delivered delta, per slice of the window. */
  cpuPerDeltaUs: number[];
  seconds: number;
}

async function openSockets(url: string, count: number): Promise<GraphqlSocket[]> {
  const sockets: GraphqlSocket[] = [];
  for (let i = 0; i < count; i += 50) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => GraphqlSocket.open(url)))));
  }
  return sockets;
}

/**
 * Runs the lanes until `stop()` resolves: each lane a run at a time, followed by its
 * subscribers (and by a resuming one, with `resuming`), each subscriber's text compared
 * with the final text.
 */
async function driveLanes(
  setup: Setup,
  sockets: GraphqlSocket[],
  tally: Tally,
  stop: Promise<void>,
  resuming?: { url: string; count: ResumeCount },
): Promise<void> {
  let stopping = false;
  void stop.then(() => (stopping = true));
  const lane = async (i: number) => {
    const mine = sockets.slice(i * PER_RUN, (i + 1) * PER_RUN);
    // The first runs are TOKENS/8..TOKENS tokens long: later runs start (and end) spread over time.
    let tokens = Math.round(TOKENS / 8 + ((TOKENS * 7) / 8) * ((i + 1) / RUNS));
    // Nor do they all start in the same millisecond: a thousand subscriptions at once is a
    // burst no chat service sees.
    await sleep((i * 1000) / RUNS);
    while (!stopping) {
      const run = await setup.driver.services.runs.createThreadAndRun('default', {
        assistantId: setup.assistantId,
        thread: { messages: [{ role: 'user', content: `Answer in ${tokens} tokens.` }] },
      });
      tokens = TOKENS;
      const following = mine.map((socket) => follow(socket, run.threadId, run.id, tally));
      const resumer = resuming && followResuming(resuming.url, run.threadId, run.id, tally, resuming.count);
      const texts = await Promise.all(following);
      const resumed = await resumer;
      const final = await setup.finalText(run.id);
      tally.runs++;
      if (final.status !== 'completed') tally.runsNotCompleted++;
      for (const text of texts) {
        if (text === LATE) {
          tally.late++;
          continue;
        }
        tally.checked++;
        if (text === undefined || text !== final.text) tally.differing++;
        if (text !== undefined && text !== final.text) tally.explain(difference(run.id, text, final.text));
      }
      if (resumed === LATE) resuming!.count.late++;
      else if (resuming) {
        resuming.count.checked++;
        if (resumed === undefined || resumed !== final.text) resuming.count.differing++;
        if (resumed !== undefined && resumed !== final.text) tally.explain(`resuming: ${difference(run.id, resumed, final.text)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: RUNS }, (_, i) => lane(i)));
}

/** The delivery measurement against one server: warm-up, the window, then the runs under way finish. */
async function measureDelivery(setup: Setup, target: PhaseResult['target'], server: RunwayProcess): Promise<PhaseResult> {
  log(`${target}: ${RUNS * PER_RUN} subscribers connecting`);
  const sockets = await openSockets(server.url!, RUNS * PER_RUN);
  const tally = new Tally(SLICE_SECONDS * 1000);
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const lanes = driveLanes(setup, sockets, tally, stopped);
  log(`${target}: ${RUNS} runs streaming; warm-up ${WARMUP_SECONDS} s, then ${SECONDS} s measured`);
  await sleep(WARMUP_SECONDS * 1000);

  const pid = server.child.pid!;
  const stopProfile = await profile(server, target);
  const stopWorkerProfile = await profile(setup.worker, `${target}-phase-worker`);
  const stopWaits = setup.sampleWaits();
  await setup.refreshWatched();
  const slices: number[] = [];
  const commitsBefore = await setup.commits();
  const before = cpuSnapshot(setup.watched);
  setup.listenInto(tally);
  tally.from = wallNow();
  tally.to = tally.from + SECONDS * 1000;
  // The server's CPU per slice of the window, each slice's end on the same clock as the deltas'.
  let sliceStart = cpuMs(pid);
  for (let k = 1; k * SLICE_SECONDS <= SECONDS; k++) {
    await sleep(Math.max(0, tally.from + k * SLICE_SECONDS * 1000 - wallNow()));
    const now = cpuMs(pid);
    slices.push(now - sliceStart);
    sliceStart = now;
  }
  await sleep(Math.max(0, tally.to - wallNow()));
  const after = cpuSnapshot(setup.watched);
  setup.listenInto(undefined);
  const seconds = (wallNow() - tally.from) / 1000;
  const commits = (await setup.commits()) - commitsBefore;
  await stopProfile();
  await stopWorkerProfile();
  await stopWaits();

  log(`${target}: window over; the runs under way finish`);
  stop();
  await lanes;
  await Promise.all(sockets.map((s) => s.close()));
  const cpuPerDeltaUs = slices.map((ms, i) => (ms * 1000) / Math.max(1, tally.deltasPerSlice[i] ?? 0));
  return { target, tally, cpu: cpuSpent(before, after), cpuPerDeltaUs, seconds, commitsPerSecond: commits / seconds };
}

/** The resume check: the same load, plus a subscriber per run that drops and resumes, until RESUMES drops. */
async function checkResumes(setup: Setup, gateway: RunwayProcess): Promise<{ count: ResumeCount; tally: Tally; seconds: number }> {
  log(`resume: ${RUNS * PER_RUN} subscribers and ${RUNS} resuming ones, until ${RESUMES} drops`);
  const sockets = await openSockets(gateway.url!, RUNS * PER_RUN);
  const tally = new Tally(SLICE_SECONDS * 1000);
  const count: ResumeCount = { drops: 0, midMessage: 0, checked: 0, differing: 0, late: 0 };
  const started = performance.now();
  const enough = (async () => {
    while (count.drops < RESUMES && performance.now() - started < RESUME_PHASE_MAX_MS) await sleep(200);
  })();
  await driveLanes(setup, sockets, tally, enough, { url: gateway.url!, count });
  await Promise.all(sockets.map((s) => s.close()));
  return { count, tally, seconds: (performance.now() - started) / 1000 };
}

// ---------------------------------------------------------------------------------------
// One transport

interface TransportResult {
  transport: 'notify' | 'redis';
  phases: PhaseResult[];
  resume: Awaited<ReturnType<typeof checkResumes>> | undefined;
}

async function onTransport(transport: 'notify' | 'redis', admin: postgres.Sql, defer: (cleanup: () => Promise<void>) => void) {
  const dbName = `runway_bench_stream_${process.pid}_${transport}`;
  await admin.unsafe(`create database ${dbName}`);
  defer(() => admin.unsafe(`drop database if exists ${dbName} with (force)`).then(() => {}));
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const databaseUrl = url.toString();
  // Set either way: an empty REDIS_URL is unset, whatever this process's environment says.
  const redis = { REDIS_URL: transport === 'redis' ? redisUrl : '' };

  const model = await startModel();
  defer(() => model.stop());
  // The driver: Runway's own services in this process, on the same transport, for
  // createThreadAndRun (the gateway then serves the subscribers alone).
  const driver = await buildApp(
    {
      databaseUrl,
      pgliteDir: 'memory://',
      databasePoolSize: 8,
      runExpiresAfterSeconds: 3600,
      production: false,
      openai: { baseURL: model.baseURL, apiKey: undefined, maxRetries: 0 },
      ...(transport === 'redis' ? { redisUrl } : {}),
    },
    { worker: false, logger: createLogger({ level: 'warn' }) },
  );
  defer(() => driver.stop());
  const assistant = await driver.services.assistants.create('default', { model: 'bench-model' });
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  defer(() => sql.end({ timeout: 1 }));
  const finalText: FinalText = async (runId) => {
    const [row] = await sql<{ status: string; content: string | null }[]>`
      select r.status, m.content from runs r left join messages m on m.run_id = r.id and m.role = 'assistant' where r.id = ${runId}`;
    return { status: row?.status ?? 'missing', text: row?.content ?? undefined };
  };

  // A plain listener on the transport, here: when each delta was announced. Up to there
  // is the worker's and the database's share of the latency; the rest, the server's.
  let listening: Tally | undefined;
  const heard = (payload: string) => {
    const at = wallNow();
    if (!listening) return;
    const texts: string[] = [];
    let uncarried = 0;
    for (const e of decodeEvents(payload)) {
      if (!('kind' in e) || e.kind !== 'delta') continue;
      if (e.text === null) uncarried++;
      else texts.push(e.text);
    }
    listening.heard(texts, uncarried, at);
  };
  if (transport === 'notify') {
    const listener = await sql.listen(EVENTS_CHANNEL, heard);
    defer(() => listener.unlisten());
  } else {
    const subscriber = new Redis(redisUrl);
    subscriber.on('message', (_channel: string, payload: string) => heard(payload));
    await subscriber.subscribe(`runway:events:${dbName}`);
    defer(async () => subscriber.disconnect());
  }

  const env = {
    DATABASE_URL: databaseUrl,
    OPENAI_BASE_URL: model.baseURL,
    OPENAI_MAX_RETRIES: '0',
    RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0',
    RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
    ...redis,
  };
  const inspect = PROFILE ? ['--inspect=127.0.0.1:0'] : [];
  const worker = await startRunwayProcess(
    { ...env, ROLE: 'worker', WORKER_CONCURRENCY: String(RUNS + 16), DATABASE_ENGINE_POOL_SIZE: '10' },
    inspect,
    true,
  );
  defer(async () => (await worker.kill('SIGKILL'), keepLog(worker, `${dbName}-worker`)));
  const gateway = await startRunwayProcess({ ...env, ROLE: 'gateway' }, inspect, true);
  defer(async () => (await gateway.kill('SIGKILL'), keepLog(gateway, `${dbName}-gateway`)));

  // Our database's PostgreSQL backends (the machine's other databases are not ours to count).
  const backends = async () =>
    (await admin<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${dbName}`).map((r) => r.pid);
  let postgresPids = await backends();
  const watched = (server: RunwayProcess): Watched => ({
    'gateway or floor': () => [server.child.pid!],
    worker: () => [worker.child.pid!],
    PostgreSQL: () => postgresPids,
    ...(transport === 'redis' ? { Redis: () => pidsNamed('redis-server') } : {}),
    'model stand-in': () => [model.child.pid!],
  });
  const setup = (server: RunwayProcess): Setup => ({
    driver,
    assistantId: assistant.id,
    finalText,
    watched: watched(server),
    listenInto: (tally) => void (listening = tally),
    refreshWatched: async () => void (postgresPids = await backends()),
    worker,
    sampleWaits: () => sampleWaits(admin, dbName),
    commits: async () => Number((await admin`select xact_commit from pg_stat_database where datname = ${dbName}`)[0]!.xact_commit),
  });

  const phases: PhaseResult[] = [];
  if (PHASES.has('runway')) phases.push(await measureDelivery(setup(gateway), 'runway', gateway));
  const resume = PHASES.has('resume') && RESUMES > 0 ? await checkResumes(setup(gateway), gateway) : undefined;
  await gateway.kill('SIGKILL');
  if (!PHASES.has('bare-ws')) return { transport, phases, resume } satisfies TransportResult;

  const floor = await startServerProcess(
    'bench/stream/bare-ws-server.ts',
    { DATABASE_URL: databaseUrl, ...redis, REDIS_CHANNEL: `runway:events:${dbName}` },
    inspect,
    { label: 'bare-ws', compiled: true },
  );
  defer(async () => (await floor.kill('SIGKILL'), keepLog(floor, `${dbName}-bare-ws`)));
  phases.push(await measureDelivery(setup(floor), 'bare-ws', floor));
  await floor.kill('SIGKILL');
  return { transport, phases, resume } satisfies TransportResult;
}

// ---------------------------------------------------------------------------------------
// Tables

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
const median = (values: number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
const ms = (v: number) => (v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);
const us = (v: number) => `${v.toFixed(0)} µs`;
const TRANSPORT_NAMES = { notify: 'NOTIFY', redis: 'Redis' } as const;

function printResults(all: TransportResult[], load: { before: number; after: number }) {
  results.print(
    `${RUNS} runs streaming at once, ${TOKENS} tokens each, one SSE chunk every ${TOKEN_MS} ms (${((RUNS * 1000) / TOKEN_MS).toFixed(0)} tokens/s in all); ` +
      `${RUNS * PER_RUN} subscribers (${PER_RUN} per run, one websocket each); ${WARMUP_SECONDS} s warm-up, ${SECONDS} s measured. ` +
      `Load average (1 min) ${load.before.toFixed(1)} before, ${load.after.toFixed(1)} after.\n`,
  );
  results.print(
    '| transport | server | deltas delivered/s | tokens per delta | announcements by the worker/s (deltas each; % without text) | token (worker) -> announced, p50 / p99 | token (worker) -> subscriber p50 | p99 | max | after the first delta p50 / p99 | server CPU per delta, median of slices (range) | texts differing from the final message |',
  );
  results.print('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const { transport, phases } of all) {
    for (const p of phases) {
      const t = p.tally;
      const sorted = t.latencies.sort((a, b) => a - b);
      const announced = t.announced.sort((a, b) => a - b);
      const live = t.liveLatencies.sort((a, b) => a - b);
      const range = `${us(Math.min(...p.cpuPerDeltaUs))}-${us(Math.max(...p.cpuPerDeltaUs))}`;
      const errors = [...t.errors].map(([k, n]) => `${n} ${k}`).join(', ');
      const integrity =
        p.target === 'bare-ws'
          ? `${t.differing} of ${t.checked} (no catch-up, by design)`
          : `**${t.differing}** of ${t.checked}${t.stuck ? `, ${t.stuck} cut off` : ''}${errors ? `; errors: ${errors}` : ''}${t.late ? ` (${t.late} more subscribed after their run ended)` : ''}`;
      results.print(
        `| ${TRANSPORT_NAMES[transport]} | ${p.target === 'runway' ? 'Runway gateway' : 'bare-ws floor'} | ${(t.deltas / p.seconds).toFixed(0)} | ${(t.tokens / Math.max(1, t.deltas)).toFixed(2)} | ${(t.announcements / p.seconds).toFixed(0)} (${(t.announcedDeltas / Math.max(1, t.announcements)).toFixed(1)}; ${((100 * t.uncarried) / Math.max(1, t.announcedDeltas)).toFixed(0)}%) | ${ms(quantile(announced, 0.5))} / ${ms(quantile(announced, 0.99))} | ${ms(quantile(sorted, 0.5))} | ${ms(quantile(sorted, 0.99))} | ${ms(sorted.at(-1) ?? NaN)} | ${ms(quantile(live, 0.5))} / ${ms(quantile(live, 0.99))} | ${us(median(p.cpuPerDeltaUs))} (${range}) | ${integrity} |`,
      );
    }
  }

  results.print('\nCPU over the measured window, in % of one core (the machine has two):\n');
  const names = [...new Set(all.flatMap((r) => r.phases.flatMap((p) => [...p.cpu.keys()])))];
  results.print(`| transport | server | ${names.join(' | ')} | database commits/s |`);
  results.print(`| --- | --- |${names.map(() => ' ---: |').join('')} ---: |`);
  for (const { transport, phases } of all) {
    for (const p of phases) {
      const cells = names.map((n) => (p.cpu.has(n) ? `${((100 * p.cpu.get(n)!) / (p.seconds * 1000)).toFixed(0)}%` : '-'));
      results.print(
        `| ${TRANSPORT_NAMES[transport]} | ${p.target === 'runway' ? 'Runway gateway' : 'bare-ws floor'} | ${cells.join(' | ')} | ${p.commitsPerSecond.toFixed(0)} |`,
      );
    }
  }

  results.print('');
  for (const { transport, phases } of all) {
    const runway = phases.find((p) => p.target === 'runway');
    const floor = phases.find((p) => p.target === 'bare-ws');
    if (!runway || !floor) continue;
    const ratio = median(runway.cpuPerDeltaUs) / median(floor.cpuPerDeltaUs);
    results.print(
      `${TRANSPORT_NAMES[transport]}: gateway CPU per delivered delta **${ratio.toFixed(2)}x** the bare-ws floor's (${us(median(runway.cpuPerDeltaUs))} / ${us(median(floor.cpuPerDeltaUs))}; target <= 1.5x).`,
    );
  }

  if (all.some((r) => r.resume)) {
    results.print(
      '\nResume check: the same load, plus a subscriber per run that drops its connection at random moments and resumes with its last cursor:\n',
    );
    results.print(
      '| transport | drops, each resumed with `after` | of them mid-message | runs followed so | texts differing from the final message | seconds |',
    );
    results.print('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const { transport, resume } of all) {
      if (!resume) continue;
      const c = resume.count;
      const errors = [...resume.tally.errors].map(([k, n]) => `${n} ${k}`).join(', ');
      results.print(
        `| ${TRANSPORT_NAMES[transport]} | ${c.drops} | ${c.midMessage} | ${c.checked}${c.late ? ` (+${c.late} subscribed after their run ended)` : ''} | **${c.differing}**${resume.tally.stuck ? ` (${resume.tally.stuck} without an end in ${RUN_TIMEOUT_MS / 1000} s)` : ''}${errors ? ` (errors: ${errors})` : ''}; the other subscribers: ${resume.tally.differing} of ${resume.tally.checked} | ${resume.seconds.toFixed(0)} |`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------

async function main() {
  const admin = postgres(serverUrl, { max: 2, onnotice: () => {} });
  const cleanups: (() => Promise<void>)[] = [];
  const defer = (cleanup: () => Promise<void>) => void cleanups.push(cleanup);
  let cleaning: Promise<void> | undefined;
  // Once, last registered first (processes stop before their database is dropped), each
  // one tried even when another fails.
  const cleanUp = () =>
    (cleaning ??= (async () => {
      while (cleanups.length > 0) await cleanups.pop()!().catch((e: unknown) => log(`cleanup failed: ${String(e)}`));
    })());
  const interrupted = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`);
    void cleanUp()
      .then(() => admin.end())
      .then(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const loadBefore = loadavg()[0]!;
  log(
    `load average before: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  try {
    const all: TransportResult[] = [];
    for (const transport of TRANSPORTS) {
      all.push(await onTransport(transport, admin, defer));
      await cleanUp();
      cleaning = undefined;
    }
    log(
      `load average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    printResults(all, { before: loadBefore, after: loadavg()[0]! });
    results.record('stream');
  } finally {
    await cleanUp();
    await admin.end();
  }
  // Sockets of the driver's clients may linger a moment; nothing is left to wait for.
  process.exit(0);
}

// The servers measured run compiled, as production runs them (npm run build).
buildRunway();
await main();

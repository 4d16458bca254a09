/**
 * Many graphql-ws subscribers on Runway gateways, each watching its own run while runs
 * change status: delivery latency from commit to client, events delivered per second,
 * gateway memory per 1,000 idle subscribers (JS heap after a full GC, read through the
 * gateway's inspector, and RSS) and gateway CPU per delivered event. First with one
 * gateway process, then with the same subscribers split over two; then the same
 * subscribers on the baseline, side by side.
 *
 * The baseline (`plain-yoga`, bench/subscriptions/plain-yoga-server.ts, one process):
 * the same subscription on a plain graphql-yoga + graphql-ws server written as yoga's
 * docs show, events through yoga's createPubSub fed by a LISTEN on Runway's event
 * channel, the run's current state read with one query and sent first. After the rows,
 * the ratios Runway/plain-yoga of CPU per event (above idle) and of heap per 1,000
 * subscribers, one process each. The floor (`bare-ws`, bench/subscriptions/bare-ws-server.ts):
 * no GraphQL, a ws server that speaks just enough graphql-transport-ws, writing each
 * event of the same LISTEN as one frame: what delivering an event costs at the least.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:subscribers
 *   BENCH_SUBSCRIBERS=10000 BENCH_SECONDS=15 BENCH_RATE=2000 BENCH_BATCH=10
 *   BENCH_TARGETS=runway,plain-yoga,bare-ws   (what to measure, in this order)
 *   BENCH_GATEWAYS=1,2   (Runway gateway counts, measured one after the other)
 *   BENCH_PROFILE=/tmp/prof   (a CPU profile of each gateway over the drive alone)
 *   BENCH_NODE_ARGS=...   (more node flags for the gateways and the baseline)
 *   BENCH_DOCS=0   (print only: leave docs/performance.md as it is)
 *
 * The table and the ratios are also written into docs/performance.md (bench:subscribers;
 * bench/results.ts).
 *
 * This process is the driver: it commits the transitions through Runway's own run
 * service, BENCH_BATCH runs per commit (one notification each, as the engine's claims
 * and finishes are), and notes when each commit returned; the subscribers live here too,
 * so commit and receipt are read off one clock. The gateways are separate processes
 * (`src/main.ts`, ROLE=gateway), as is the baseline; only one target's processes run at
 * a time. Every target gets the same runs and the same driver: the runs stay where the
 * last drive left them, and the driver's notion of where that is is checked against the
 * database before each measurement. CPU per event is given twice: all the gateway's CPU
 * while driving, and that minus what the same subscribers cost idle (pings, timers) over
 * as long, measured just before. Bounded: fixed counts and durations; it stops by itself
 * and drops its database.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createClient, type Client } from 'graphql-ws';
import postgres from 'postgres';
import WebSocket from 'ws';
import { buildApp, type App } from '../src/app.js';
import { buildRunway, startRunwayProcess, startServerProcess, type RunwayProcess } from '../test/support/processes.js';
import { resultLines } from './results.js';

const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const RATE = Number(process.env.BENCH_RATE ?? 2000); // transitions committed per second
/** Transitions per commit: the engine commits claims and finishes in batches too. */
const BATCH = Number(process.env.BENCH_BATCH ?? 10);
/** Runway gateway counts to measure, one after the other. */
const GATEWAYS = (process.env.BENCH_GATEWAYS ?? '1,2').split(',').map(Number);
const TARGET_NAMES = ['runway', 'plain-yoga', 'bare-ws'] as const;
type Target = (typeof TARGET_NAMES)[number];
/** What to measure, in this order: Runway (at each gateway count) and the baseline. */
const TARGETS = (process.env.BENCH_TARGETS ?? 'runway,plain-yoga,bare-ws').split(',').map((t) => {
  const name = t.trim() as Target;
  if (!TARGET_NAMES.includes(name)) throw new Error(`BENCH_TARGETS: unknown target '${t}' (known: ${TARGET_NAMES.join(', ')})`);
  return name;
});
/** More node flags, for the gateways and the baseline alike. */
const NODE_ARGS = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const results = resultLines();

type DrivenStatus = 'in_progress' | 'requires_action' | 'queued';
/** Where each run is in the driver's cycle, kept across measurements. */
const state = new Map<string, DrivenStatus>();

const ACTION = {
  type: 'submit_tool_outputs' as const,
  submitToolOutputs: { toolCalls: [{ id: 'call_1', type: 'function' as const, function: { name: 'f', arguments: '{}' } }] },
};
const NEXT: Record<DrivenStatus, DrivenStatus> = { in_progress: 'requires_action', requires_action: 'queued', queued: 'in_progress' };

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/** User + system CPU time of a process, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks of 10 ms
}

/** A DevTools protocol session with a gateway, through the inspector it listens on. */
async function inspector(gateway: RunwayProcess) {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(gateway.stderr())?.[1];
  if (!url) throw new Error('the gateway has no inspector');
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

/** The gateway's JS heap in use after a full garbage collection. */
async function usedHeapMiB(gateway: RunwayProcess): Promise<number> {
  const session = await inspector(gateway);
  await session.call('HeapProfiler.collectGarbage');
  const { usedSize } = await session.call('Runtime.getHeapUsage');
  session.close();
  return usedSize / 1024 / 1024;
}

/**
 * With BENCH_PROFILE=dir: a CPU profile of each gateway over the drive alone (not the
 * connecting and idling before it), written there as a .cpuprofile.
 */
async function profileDrive(target: Target, gateways: RunwayProcess[]): Promise<() => Promise<void>> {
  const dir = process.env.BENCH_PROFILE;
  if (!dir) return async () => {};
  const sessions = await Promise.all(gateways.map(inspector));
  for (const s of sessions) {
    await s.call('Profiler.enable');
    await s.call('Profiler.setSamplingInterval', { interval: 200 });
    await s.call('Profiler.start');
  }
  return async () => {
    mkdirSync(dir, { recursive: true });
    for (const [i, s] of sessions.entries()) {
      const { profile } = await s.call('Profiler.stop');
      const file = `${dir}/subscribers-${target}-${gateways.length}gw-${i}-${Date.now()}.cpuprofile`;
      writeFileSync(file, JSON.stringify(profile));
      console.error(`[bench] profile: ${file}`);
      s.close();
    }
  };
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function main() {
  const dbName = `runway_bench_subs_${process.pid}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const databaseUrl = url.toString();
  let driver: App | undefined;
  let gateways: RunwayProcess[] = [];
  // The inspector, to read the JS heap after a full GC; idle until the bench asks.
  const nodeArgs = ['--inspect=127.0.0.1:0', ...NODE_ARGS];
  /** One process each, for the ratios. */
  const single: Partial<Record<Target, Measured>> = {};
  try {
    driver = await buildApp(
      { databaseUrl, pgliteDir: 'memory://', databasePoolSize: 16, runExpiresAfterSeconds: 86_400, production: false },
      { worker: false },
    );
    const runIds = await seed(driver);
    results.print(
      `${SUBSCRIBERS} subscribers, one graphql-ws socket each; ${RATE} transitions committed per second, ` +
        `${BATCH} per commit, for ${SECONDS} s\n`,
    );
    results.print(
      '| target | gateways | subscribers | JS heap per 1,000 idle subscribers | RSS per 1,000 | events delivered/s | commit -> client p50 | p99 | gateway CPU per event (above idle) | CPU per event (all) | idle CPU |',
    );
    results.print('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const target of TARGETS) {
      if (target === 'runway') {
        for (const count of GATEWAYS) {
          for (let i = gateways.length; i < count; i++) {
            gateways.push(
              await startRunwayProcess(
                { DATABASE_URL: databaseUrl, ROLE: 'gateway', WS_MAX_SUBSCRIPTIONS: '10', RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0' },
                nodeArgs,
                true,
              ),
            );
          }
          const measured = await measure(driver, target, gateways.slice(0, count), runIds);
          if (count === 1) single[target] = measured;
        }
      } else {
        gateways.push(
          await startServerProcess(`bench/subscriptions/${target}-server.ts`, { DATABASE_URL: databaseUrl }, nodeArgs, {
            label: target,
            compiled: true,
          }),
        );
        single[target] = await measure(driver, target, gateways, runIds);
      }
      // The next target runs alone on the machine.
      await Promise.all(gateways.map((g) => g.kill('SIGTERM')));
      gateways = [];
    }
    const runway = single.runway;
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    for (const other of ['plain-yoga', 'bare-ws'] as const) {
      const them = single[other];
      if (!runway || !them) continue;
      results.print(
        `\nRunway / ${other}, one process each: CPU per event (above idle) ${ratio(runway.cpuPerEventAboveIdleUs, them.cpuPerEventAboveIdleUs)}, JS heap per 1,000 idle subscribers ${ratio(runway.heapPerThousandMiB, them.heapPerThousandMiB)}`,
      );
    }
    if (!runway && TARGETS.length > 1) results.print('\n(no ratios to Runway: they need BENCH_GATEWAYS to include 1)');
    results.record('subscribers');
  } finally {
    await Promise.all(gateways.map((g) => g.kill('SIGTERM')));
    await driver?.stop();
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

/** One run per subscriber, each on its own thread, all in_progress to start with. */
async function seed(app: App): Promise<string[]> {
  const { assistants, threads, runs } = app.services;
  const assistant = await assistants.create('default', { model: 'scripted' });
  const ids: string[] = [];
  const lanes = Array.from({ length: 16 }, async () => {
    while (ids.length < SUBSCRIBERS) {
      const thread = await threads.create('default', {});
      const run = await runs.create('default', thread.id, { assistantId: assistant.id });
      ids.push(run.id);
      await app.engine.transition(run.id, 'in_progress');
      state.set(run.id, 'in_progress');
    }
  });
  await Promise.all(lanes);
  return ids.slice(0, SUBSCRIBERS);
}

/** A measurement's figures the ratios are taken of. */
interface Measured {
  heapPerThousandMiB: number;
  cpuPerEventAboveIdleUs: number;
}

/**
 * The runs must be where the driver believes they are: a run it thinks is elsewhere is
 * one its next transition would not move (refused by the status guard), and every later
 * one after it. The runs carry over from one measurement to the next, so check.
 */
async function checkDriverState(app: App, runIds: string[]) {
  const { runs } = app.services;
  let wrong = 0;
  for (let i = 0; i < runIds.length; i += 500) {
    const rows = await Promise.all(runIds.slice(i, i + 500).map((id) => runs.getInProject('default', id)));
    for (const run of rows) if (!run || run.status !== state.get(run.id)) wrong++;
  }
  if (wrong > 0) throw new Error(`${wrong} of ${runIds.length} runs are not in the status the driver expects`);
}

async function measure(app: App, target: Target, gateways: RunwayProcess[], runIds: string[]): Promise<Measured> {
  await checkDriverState(app, runIds);
  const pids = gateways.map((g) => g.child.pid!);
  const rssBefore = pids.map(rssMiB);
  const heapBefore = await Promise.all(gateways.map(usedHeapMiB));
  const commits = new Map<string, number>();
  const latencies: number[] = [];
  let delivered = 0;
  let measuring = false;

  // Subscribers, spread over the gateways, one socket each, connected in batches.
  const clients: Client[] = [];
  let ready = 0;
  for (let i = 0; i < runIds.length; i += 250) {
    const batch = runIds.slice(i, i + 250).map((runId, j) => {
      const gateway = gateways[(i + j) % gateways.length]!;
      const client = createClient({ url: gateway.url!.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });
      clients.push(client);
      return new Promise<void>((resolve) => {
        let first = true;
        client.subscribe(
          { query: 'subscription($r: ID!) { runStatusChanged(runId: $r) { runId version status } }', variables: { r: runId } },
          {
            next: (value: any) => {
              const now = performance.now();
              if (first) {
                first = false;
                ready++;
                return resolve();
              }
              const e = value.data.runStatusChanged;
              if (!measuring) return;
              delivered++;
              const at = commits.get(`${e.runId}:${e.version}`);
              if (at !== undefined) latencies.push(now - at);
            },
            error: (error) => {
              console.error('subscriber failed', error);
              resolve();
            },
            complete: () => {},
          },
        );
      });
    });
    await Promise.all(batch);
  }
  if (ready < runIds.length) throw new Error(`only ${ready} of ${runIds.length} subscribers connected`);
  await new Promise((r) => setTimeout(r, 2000)); // settle
  const rssIdle = pids.map(rssMiB);
  const perThousand = rssIdle.reduce((s, v, i) => s + v - rssBefore[i]!, 0) / (runIds.length / 1000);
  const heapIdle = await Promise.all(gateways.map(usedHeapMiB));
  const heapPerThousand = heapIdle.reduce((s, v, i) => s + v - heapBefore[i]!, 0) / (runIds.length / 1000);

  // What the idle subscribers cost by themselves (pings, timers), over as long as the
  // drive will take: subtracted below, so the per-event figure is the events' own.
  const idleCpuBefore = pids.map(cpuMs);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const idleCpuPerSecond = pids.reduce((s, pid, i) => s + cpuMs(pid) - idleCpuBefore[i]!, 0) / SECONDS;

  // The driver: transitions at RATE per second, BATCH per commit (one notification
  // each), round-robin over the runs, each run cycling in_progress -> requires_action ->
  // queued -> in_progress.
  const runs = app.engine;
  const stopProfile = await profileDrive(target, gateways);
  const cpuBefore = pids.map(cpuMs);
  console.error(`[bench] driving ${RATE} transitions/s for ${SECONDS} s`);
  measuring = true;
  const started = performance.now();
  let next = 0;
  let committed = 0;
  const LANES = 8;
  const lanes = Array.from({ length: LANES }, async (_, lane) => {
    for (let k = lane; ; k += LANES) {
      const due = started + (k * BATCH * 1000) / RATE;
      if (due - started > SECONDS * 1000) return;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const batch = Array.from({ length: BATCH }, () => runIds[next++ % runIds.length]!);
      // One step per run per visit: where each goes is decided before any of them moves.
      const target = new Map(batch.map((runId) => [runId, NEXT[state.get(runId)!]]));
      for (const to of ['requires_action', 'queued', 'in_progress'] as const) {
        const moving = batch.filter((runId) => target.get(runId) === to);
        if (moving.length === 0) continue;
        const moved = await runs.transitionMany(
          to,
          moving.map((runId) => ({ runId, data: to === 'requires_action' ? { requiredAction: ACTION } : {} })),
        );
        const now = performance.now();
        for (const run of moved) {
          commits.set(`${run.id}:${run.version}`, now);
          state.set(run.id, run.status as DrivenStatus);
        }
        committed += moved.length;
      }
    }
  });
  await Promise.all(lanes);
  const driveSeconds = (performance.now() - started) / 1000;
  // Behind schedule when it took longer than SECONDS: the lanes wait for their commits.
  console.error(`[bench] committed ${committed} transitions in ${driveSeconds.toFixed(1)} s (scheduled: ${SECONDS} s)`);
  await new Promise((r) => setTimeout(r, 2000)); // let deliveries finish
  measuring = false;
  const cpu = pids.reduce((s, pid, i) => s + cpuMs(pid) - cpuBefore[i]!, 0);
  const measuredSeconds = (performance.now() - started) / 1000;
  await stopProfile();
  const eventsCpu = cpu - idleCpuPerSecond * measuredSeconds;
  const sorted = latencies.sort((a, b) => a - b);
  const perEventUs = (ms: number) => (ms * 1000) / Math.max(delivered, 1);
  const perEvent = (ms: number) => `${perEventUs(ms).toFixed(0)} µs`;
  results.print(
    `| ${target} | ${gateways.length} | ${runIds.length} | ${heapPerThousand.toFixed(1)} MiB | ${perThousand.toFixed(1)} MiB | ${(delivered / driveSeconds).toFixed(0)} (of ${(committed / driveSeconds).toFixed(0)} committed/s) | ${quantile(sorted, 0.5).toFixed(1)} ms | ${quantile(sorted, 0.99).toFixed(1)} ms | ${perEvent(eventsCpu)} | ${perEvent(cpu)} | ${(idleCpuPerSecond / 10).toFixed(1)}% |`,
  );
  await Promise.all(clients.map((c) => c.dispose()));
  await new Promise((r) => setTimeout(r, 1000));
  return { heapPerThousandMiB: heapPerThousand, cpuPerEventAboveIdleUs: perEventUs(eventsCpu) };
}

// The servers measured run compiled, as production runs them (npm run build).
buildRunway();
await main();

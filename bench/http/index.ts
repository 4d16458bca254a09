/**
 * `npm run bench`: Runway against a bare node:http + postgres.js baseline, side by side.
 *
 * Creates a scratch database on DATABASE_URL's server, seeds it with SQL (BENCH_THREADS
 * threads x BENCH_RUNS_PER_THREAD runs, with messages, steps and events), starts Runway
 * (gateway only, production mode, an API key) and the baseline as child processes, checks
 * that both give the same JSON, then drives each scenario from a separate autocannon
 * process: rounds interleaved (baseline, Runway, Runway, baseline, ...), ratios taken per
 * round, the median reported, with each server's CPU time per request (from /proc).
 * Bounded: it stops by itself and drops its databases, also when it fails or is interrupted.
 *
 * Scenarios (BENCH_SCENARIOS, comma-separated; they run in this order whatever the order given):
 *   run, runs, nested   reads: run(threadId, runId), runs(threadId, first: 20), thread -> runs -> steps
 *   rest-run, rest-runs the REST API's reads: GET /v1/threads/{t}/runs/{r}, GET /v1/threads/{t}/runs?limit=20
 *                       (same answer bytes from both, same statements as Runway's handler; their
 *                       own table, bench:rest)
 *   create              createRun(threadId, { assistantId }) { id status }, each request on a
 *                       fresh thread (BENCH_CREATE_THREADS of them are seeded)
 *   pglite              the same three reads with Runway on embedded PGlite (seeded in a
 *                       directory of its own), against the baseline on PostgreSQL; not in
 *                       the default (it adds about half the run time): BENCH_PGLITE=1 adds
 *                       it, `npm run bench:pglite` runs only it
 *   growth              runs(threadId, first: 20) with 10,000 runs in the table, then with
 *                       BENCH_GROWTH_ROWS, same two processes, on a scratch database of its own
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench
 *   BENCH_SECONDS=5 BENCH_ROUNDS=3 BENCH_CONNECTIONS=50 BENCH_THREADS=1000 BENCH_RUNS_PER_THREAD=100
 *   BENCH_SCENARIOS=run,runs,nested,rest-run,rest-runs,create,growth   (the default)
 *   BENCH_PGLITE=1             (adds pglite)
 *   BENCH_PGLITE_THREADS=1000  (pglite's data set: the first that many of the threads; default BENCH_THREADS)
 *   BENCH_CREATE_THREADS=200000
 *   BENCH_GROWTH_ROWS=1000000  (the large size; a multiple of 100 above 10,000)
 *   BENCH_PROFILE=/tmp/prof    (every server process, Runway and baseline, runs under node --cpu-prof, profiles written there)
 *   BENCH_NODE_ARGS=--trace-gc-nvp   (node flags for every server process; their logs are in the temp directory)
 *   BENCH_SOAK_MINUTES=10      (then: sustained run reads for that long, req/s per minute;
 *                               `npm run bench:soak` does only this)
 *   BENCH_DOCS=0               (print only: leave docs/performance.md as it is)
 *   BENCH_AGAINST=/path/to/checkout   (the reads also measure that checkout's build, built
 *                               there first, in the same interleaved rounds: a change's effect
 *                               as a ratio taken side by side, not across runs of a noisy machine)
 *
 * Each table is also written into docs/performance.md (bench/results.ts): the main one as
 * bench:http, the REST reads as bench:rest, then bench:pglite, bench:growth and bench:soak, each when it was measured.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import postgres from 'postgres';
import { measureCreate } from './create.js';
import { measureGrowth } from './growth.js';
import {
  fmt,
  getText,
  interleaved,
  load,
  log,
  med,
  medianRatio,
  post,
  RUN_NAME,
  scratchDatabase,
  scratchFile,
  startBaseline,
  startRunway,
  type Defer,
  type Sample,
  type Settings,
  type Target,
} from './harness.js';
import { isRestRead, READS, REST_READ_NAMES, REST_READS } from './operations.js';
import { checkRestStatements } from './rest-statements.js';
import { measurePglite } from './pglite.js';
import { postgresRunner, seed } from './seed.js';
import { recordResults } from '../results.js';
import { buildRunway } from '../../test/support/processes.js';

const ORDER = ['run', 'runs', 'nested', 'rest-run', 'rest-runs', 'create', 'pglite', 'growth'] as const;
type ScenarioName = (typeof ORDER)[number];

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const THREADS = Number(process.env.BENCH_THREADS ?? 1000);
const RUNS_PER_THREAD = Number(process.env.BENCH_RUNS_PER_THREAD ?? 100);
const settings: Settings = {
  seconds: Number(process.env.BENCH_SECONDS ?? 5),
  rounds: Number(process.env.BENCH_ROUNDS ?? 3),
  connections: Number(process.env.BENCH_CONNECTIONS ?? 50),
};
const SOAK_MINUTES = Number(process.env.BENCH_SOAK_MINUTES ?? 0);
const PGLITE_THREADS = Number(process.env.BENCH_PGLITE_THREADS ?? THREADS);
const CREATE_THREADS = Number(process.env.BENCH_CREATE_THREADS ?? 200_000);
const GROWTH_ROWS = Number(process.env.BENCH_GROWTH_ROWS ?? 1_000_000);
const AGAINST = process.env.BENCH_AGAINST;
// Checked before seeding, which takes minutes.
if (AGAINST && !existsSync(join(AGAINST, 'dist/src/main.js')))
  throw new Error(`BENCH_AGAINST: build ${AGAINST} first (npm run build there)`);

function scenarios(): Set<ScenarioName> {
  const asked = (process.env.BENCH_SCENARIOS ?? 'run,runs,nested,rest-run,rest-runs,create,growth').split(',').filter(Boolean);
  if (process.env.BENCH_PGLITE === '1') asked.push('pglite');
  const unknown = asked.filter((s) => !ORDER.includes(s as ScenarioName));
  if (unknown.length) throw new Error(`unknown BENCH_SCENARIOS: ${unknown.join(', ')} (known: ${ORDER.join(', ')})`);
  return new Set(asked as ScenarioName[]);
}

/** Sustained `run` reads on Runway alone, a minute at a time: does it stay as fast? */
async function soak(runway: Target, idsFile: string): Promise<string> {
  const minutes: Sample[] = [];
  for (let m = 0; m < SOAK_MINUTES; m++) {
    const s = await load(runway, { scenario: 'run', idsFile }, 60, settings.connections);
    if (s.non2xx || s.errors) throw new Error(`soak minute ${m + 1}: ${s.non2xx} non-2xx, ${s.errors} errors`);
    minutes.push(s);
    log(`soak minute ${m + 1}: ${fmt(s.rps)} req/s, p99 ${s.p99} ms, ${fmt(s.cpuMsPerRequest, 3)} CPU ms/req`);
  }
  const first = minutes[0]!;
  const last = minutes.at(-1)!;
  return [
    `\nSoak: run(threadId, runId), ${settings.connections} connections, ${SOAK_MINUTES} minutes\n`,
    '| minute | req/s | p99 | CPU ms/req |',
    '| ---: | ---: | ---: | ---: |',
    ...minutes.map((s, i) => `| ${i + 1} | ${fmt(s.rps)} | ${s.p99} ms | ${fmt(s.cpuMsPerRequest, 3)} |`),
    `\nlast minute / first minute: **${fmt(last.rps / first.rps, 2)}x**`,
  ].join('\n');
}

/** A row of the main table: Runway against the baseline on one scenario. */
/** A read's ratios to the baseline, this checkout's and BENCH_AGAINST's, from the same rounds. */
function againstRow(scenario: string, samples: Record<string, Sample[]>): string {
  const { runway: r, against: a, baseline: b } = samples as Record<'runway' | 'against' | 'baseline', Sample[]>;
  const ratio = (x: Sample[]) =>
    `${fmt(
      medianRatio(x, b, (s) => s.rps),
      3,
    )}x`;
  const cpu = (x: Sample[]) =>
    fmt(
      med(x, (s) => s.cpuMsPerRequest),
      3,
    );
  return `| ${scenario} | ${ratio(r)} | ${ratio(a)} | ${cpu(r)} / ${cpu(a)} |`;
}

function compareRow(scenario: string, samples: Record<string, Sample[]>): string {
  const r = samples.runway!;
  const b = samples.baseline!;
  const p99Ratio = medianRatio(r, b, (s) => Math.max(1, s.p99));
  return `| ${scenario} | ${fmt(med(r, (s) => s.rps))} | ${fmt(med(b, (s) => s.rps))} | **${fmt(
    medianRatio(r, b, (s) => s.rps),
    2,
  )}x** | ${med(r, (s) => s.p99)} / ${med(b, (s) => s.p99)} ms (${fmt(p99Ratio, 1)}x) | ${fmt(
    med(r, (s) => s.cpuMsPerRequest),
    3,
  )} / ${fmt(
    med(b, (s) => s.cpuMsPerRequest),
    3,
  )} |`;
}

/** The scenarios on the main data set: the reads, create and pglite (and the soak); prints their tables. */
async function onMainDataSet(chosen: Set<ScenarioName>, admin: postgres.Sql, defer: Defer): Promise<void> {
  const databaseUrl = await scratchDatabase(admin, serverUrl, RUN_NAME, defer);
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  defer(() => sql.end());
  // Run n made at now + n, so that the last is made about now.
  const now = Math.floor(Date.now() / 1000) - THREADS * RUNS_PER_THREAD;
  log(`seeding ${THREADS} threads x ${RUNS_PER_THREAD} runs (with messages and steps)...`);
  const seeded = await seed(postgresRunner(sql), now, THREADS, RUNS_PER_THREAD, log);
  const idsFile = scratchFile('ids', seeded.runs, defer);

  const runway = await startRunway('runway', 'runway', { DATABASE_URL: databaseUrl });
  defer(runway.stop);
  const baseline = await startBaseline('baseline', 'baseline', databaseUrl);
  defer(baseline.stop);
  const targets = [baseline.target, runway.target];
  // The reads only: create would take threads from the list the other measures.
  const readTargets = [...targets];
  if (AGAINST) {
    const against = await startRunway('against', 'against', { DATABASE_URL: databaseUrl }, AGAINST);
    defer(against.stop);
    readTargets.push(against.target);
  }
  const againstRows: string[] = [];

  const reads = READS.filter((s) => chosen.has(s));
  // Same JSON from both, or the comparison means nothing.
  const [threadId, runId] = seeded.runs[123 % seeded.runs.length]!;
  for (const scenario of reads) {
    const [a, b, c = b] = await Promise.all(readTargets.map((t) => post(t, scenario, { threadId, runId })));
    if (!isDeepStrictEqual(b, c)) throw new Error(`${scenario}: BENCH_AGAINST's build answers otherwise`);
    if (!isDeepStrictEqual(a, b))
      throw new Error(`${scenario}: responses differ\nbaseline: ${JSON.stringify(a)}\nrunway:   ${JSON.stringify(b)}`);
  }
  if (reads.length) log(`both servers give the same JSON for ${reads.join(', ')}`);
  const restReads = REST_READ_NAMES.filter((s) => chosen.has(s));
  if (restReads.length) {
    // The same bytes (field order included) and the same statements.
    for (const scenario of restReads) {
      const path = REST_READS[scenario]({ threadId, runId });
      const [a, b] = await Promise.all(targets.map((t) => getText(t, path)));
      if (a!.status !== 200 || a!.text !== b!.text)
        throw new Error(`${scenario}: answers differ\nbaseline: ${a!.status} ${a!.text}\nrunway:   ${b!.status} ${b!.text}`);
    }
    await checkRestStatements(databaseUrl, restReads, { threadId, runId });
    log(`both servers give the same bytes and send the same SQL for ${restReads.join(', ')}`);
  }

  const rows: string[] = [];
  for (const scenario of reads) {
    const samples = await interleaved(readTargets, settings, scenario, (t, seconds) =>
      load(t, { scenario, idsFile }, seconds, settings.connections),
    );
    rows.push(compareRow(scenario, samples));
    if (AGAINST) againstRows.push(againstRow(scenario, samples));
  }
  const restRows: string[] = [];
  for (const scenario of restReads) {
    const samples = await interleaved(readTargets, settings, scenario, (t, seconds) =>
      load(t, { scenario, idsFile }, seconds, settings.connections),
    );
    restRows.push(compareRow(scenario, samples));
    if (AGAINST) againstRows.push(againstRow(scenario, samples));
  }
  if (againstRows.length) {
    console.log(
      [
        `\nThis checkout vs ${AGAINST}, each as a ratio of the baseline's req/s in the same rounds (medians of the per-round ratios)\n`,
        '| scenario | this checkout | BENCH_AGAINST | CPU ms/req this / BENCH_AGAINST |',
        '| --- | --- | --- | --- |',
        ...againstRows,
      ].join('\n'),
    );
  }
  if (restRows.length) {
    printAndRecord(
      'rest',
      [
        `\nRunway's REST reads (/v1) vs bare node:http + postgres.js, ${THREADS * RUNS_PER_THREAD} runs, ${settings.connections} connections, ${settings.rounds} interleaved rounds of ${settings.seconds} s (medians)\n`,
        '| scenario | Runway req/s | baseline req/s | ratio | p99 Runway / baseline | CPU ms/req Runway / baseline |',
        '| --- | --- | --- | --- | --- | --- |',
        ...restRows,
      ].join('\n'),
    );
  }
  // After the reads: the runs it creates (queued, in threads of their own) grow the table.
  if (chosen.has('create')) {
    const samples = await measureCreate(sql, targets, settings, { now, firstThread: THREADS, count: CREATE_THREADS }, defer);
    rows.push(compareRow('create', samples));
  }
  if (rows.length) {
    printAndRecord(
      'http',
      [
        `\nRunway vs bare node:http + postgres.js, ${THREADS * RUNS_PER_THREAD} runs, ${settings.connections} connections, ${settings.rounds} interleaved rounds of ${settings.seconds} s (medians)\n`,
        '| scenario | Runway req/s | baseline req/s | ratio | p99 Runway / baseline | CPU ms/req Runway / baseline |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows,
      ].join('\n'),
    );
  }
  if (chosen.has('pglite')) {
    const data = { now, threads: Math.min(PGLITE_THREADS, THREADS), runsPerThread: RUNS_PER_THREAD };
    printAndRecord('pglite', await measurePglite(baseline.target, settings, data, defer));
  }
  if (SOAK_MINUTES > 0) printAndRecord('soak', await soak(runway.target, idsFile));
}

/** A result table: printed, and kept in docs/performance.md as the scenario's latest. */
function printAndRecord(name: string, table: string): void {
  console.log(table);
  recordResults(name, table);
}

async function main() {
  const chosen = scenarios();
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  const cleanups: (() => Promise<void>)[] = [];
  const defer: Defer = (cleanup) => void cleanups.push(cleanup);
  let cleaning: Promise<void> | undefined;
  // Once, last registered first (servers stop before their database is dropped), each
  // one tried even when another fails.
  const cleanUp = () =>
    (cleaning ??= (async () => {
      for (const cleanup of cleanups.reverse()) await cleanup().catch((e: unknown) => log(`cleanup failed: ${String(e)}`));
      await admin.end();
    })());
  const interrupted = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`);
    void cleanUp().then(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const onMain = ['run', 'runs', 'nested', 'create', 'pglite'].some((s) => chosen.has(s as ScenarioName)) || [...chosen].some(isRestRead);
    if (onMain || SOAK_MINUTES > 0) await onMainDataSet(chosen, admin, defer);
    if (chosen.has('growth')) printAndRecord('growth', await measureGrowth(admin, serverUrl, settings, GROWTH_ROWS, defer));
  } finally {
    await cleanUp();
  }
}

// The servers measured run compiled, as production runs them (npm run build).
buildRunway();
await main();

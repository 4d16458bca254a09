/**
 * The `growth` scenario: does `runs(threadId, first: 20)` stay as fast when the runs table
 * grows 100-fold? One Runway and one baseline process, on a database of their own,
 * measured side by side with 10,000 runs in the table, then again, the same processes,
 * after it grew to BENCH_GROWTH_ROWS (1,000,000).
 *
 * Its own scratch database, because the sizes must be what they say (the main data set
 * holds 100,000 runs, more than the small size), and because a million fresh rows and
 * their vacuum and checkpoint would otherwise weigh on the scenarios measured after them.
 */
import { isDeepStrictEqual } from 'node:util';
import postgres from 'postgres';
import { openDatabase } from '../../src/db/client.js';
import type { Announcer } from '../../src/runs/announcer.js';
import { sql } from 'drizzle-orm';
import { runFaces } from '../../src/runs/index.js';
import { RUNS_PAGE } from './baseline-sql.js';
import {
  fmt,
  interleaved,
  load,
  log,
  med,
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
import { BENCH_PROJECT, postgresRunner, seedGrowth } from './seed.js';

const SMALL = 10_000;
const PER_THREAD = 100;

/**
 * The statements Runway sends for runs(threadId, first: 20), from the service its
 * resolver calls, must be the baseline's, text for text.
 */
async function checkSameSql(url: string, threadId: string): Promise<void> {
  const sent: string[] = [];
  const database = await openDatabase({ url, poolSize: 1, onQuery: (text) => sent.push(text) });
  // A list announces nothing.
  const announcer: Announcer = {
    statusLine: () => sql`null`,
    itemLine: () => sql`null`,
    deltaLine: () => '',
    inStatement: () => sql`null`,
    inTransaction: async () => {},
    committed: () => {},
    relayed: () => Promise.resolve(),
    text: { publish: async () => {} },
  };
  try {
    const runs = runFaces({ db: database.db, announcer, clock: () => 0, runExpiresAfterSeconds: 600 }).commands;
    await runs.list(BENCH_PROJECT, threadId, { first: 20 });
  } finally {
    await database.close();
  }
  if (!isDeepStrictEqual(sent, [...RUNS_PAGE])) {
    throw new Error(
      `growth: Runway's runs(threadId, first) statements are not the baseline's (bench/http/baseline-sql.ts)\n` +
        `runway:   ${JSON.stringify(sent)}\nbaseline: ${JSON.stringify(RUNS_PAGE)}`,
    );
  }
  log('growth: the baseline sends the same SQL as Runway for runs(threadId, first)');
}

/**
 * The plan of the page query, as a prepared statement gets it: generic (what PostgreSQL
 * settles on after a few executions) and custom. Both must read the thread's index.
 */
async function checkPlan(sql: postgres.Sql, threadId: string, print: boolean): Promise<void> {
  const plans: string[] = [];
  for (const mode of ['force_generic_plan', 'force_custom_plan']) {
    plans.push(
      await sql.begin(async (tx) => {
        await tx.unsafe(`set local plan_cache_mode = ${mode}`);
        await tx.unsafe(`prepare growth_page as ${RUNS_PAGE[0]}`);
        const rows = await tx.unsafe(`explain execute growth_page(21, '${threadId}', '${BENCH_PROJECT}')`);
        await tx.unsafe('deallocate growth_page');
        return rows.map((r) => r['QUERY PLAN'] as string).join('\n');
      }),
    );
  }
  if (print) log(`growth: plan of the page query (generic):\n${plans[0]}`);
  // The runs must be walked through the thread's index; the thread's own row is one of a
  // few hundred here, which PostgreSQL may as well scan.
  const unindexed = plans.find(
    (p) => !/Index (Only )?Scan (Backward )?using runs_thread_id_id_idx/.test(p) || p.includes('Seq Scan on runs'),
  );
  if (unindexed) throw new Error(`growth: the page query does not walk runs_thread_id_id_idx:\n${unindexed}`);
}

async function measureAt(sql: postgres.Sql, targets: Target[], settings: Settings, rows: number, large: boolean, defer: Defer) {
  const pairs = (await sql`select thread_id, max(id) as id from runs group by thread_id order by thread_id`).map(
    (r) => [r.thread_id, r.id] as [string, string],
  );
  const idsFile = scratchFile(`growth-${rows}`, pairs, defer);
  const [threadId] = pairs[Math.floor(pairs.length / 2)]!;
  await checkPlan(sql, threadId, large);
  const [a, b] = await Promise.all(targets.map((t) => post(t, 'runs', { threadId })));
  if (!isDeepStrictEqual(a, b)) throw new Error(`growth at ${rows}: responses differ\n${JSON.stringify(a)}\n${JSON.stringify(b)}`);
  // The processes are new at the small size: warmed longer there (Runway's CPU per request
  // still falls for several seconds as its code gets optimized), or the small size would
  // look slower than it is and the growth smaller.
  const warmSeconds = large ? 2 : Math.max(2, 2 * settings.seconds);
  return interleaved(
    targets,
    settings,
    `growth ${rows}`,
    (t, seconds) => load(t, { scenario: 'runs', idsFile }, seconds, settings.connections),
    warmSeconds,
  );
}

/** Measures both sizes; returns the scenario's table. */
export async function measureGrowth(
  admin: postgres.Sql,
  serverUrl: string,
  settings: Settings,
  largeRows: number,
  defer: Defer,
): Promise<string> {
  if (largeRows <= SMALL || largeRows % PER_THREAD) throw new Error(`BENCH_GROWTH_ROWS must be a multiple of ${PER_THREAD} above ${SMALL}`);
  const url = await scratchDatabase(admin, serverUrl, `${RUN_NAME}_growth`, defer);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  defer(() => sql.end());
  const db = postgresRunner(sql);
  // Run n made at now + n, so that the last is made about now.
  const now = Math.floor(Date.now() / 1000) - largeRows;
  log(`growth: seeding ${SMALL} runs...`);
  await seedGrowth(db, now, { from: 0, to: SMALL / PER_THREAD }, PER_THREAD, 0);
  await checkSameSql(url, (await sql`select id from threads limit 1`)[0]!.id);

  const runway = await startRunway('runway', 'growth-runway', { DATABASE_URL: url });
  defer(runway.stop);
  const baseline = await startBaseline('baseline', 'growth-baseline', url);
  defer(baseline.stop);
  const targets = [baseline.target, runway.target];
  const small = await measureAt(sql, targets, settings, SMALL, false, defer);

  log(`growth: seeding up to ${largeRows} runs...`);
  const started = Date.now();
  await seedGrowth(db, now, { from: SMALL / PER_THREAD, to: largeRows / PER_THREAD }, PER_THREAD, SMALL, log);
  // The seeding's WAL written out now, not by a checkpoint in the middle of a measurement.
  await sql`checkpoint`;
  log(`growth: seeded in ${fmt((Date.now() - started) / 1000)} s`);
  const large = await measureAt(sql, targets, settings, largeRows, true, defer);
  await Promise.all([runway.stop(), baseline.stop()]);

  const n = (x: number) => x.toLocaleString('en-US');
  const row = (rows: number, s: Record<string, Sample[]>) =>
    `| ${n(rows)} | ${med(s.runway!, (x) => x.p50)} ms | ${fmt(med(s.runway!, (x) => x.rps))} | ${med(s.baseline!, (x) => x.p50)} ms | ${fmt(med(s.baseline!, (x) => x.rps))} |`;
  const growth = (name: string, pick: (s: Sample) => number) => fmt(med(large[name]!, pick) / med(small[name]!, pick), 2);
  return [
    `\nGrowth: runs(threadId, first: 20) on threads of ${PER_THREAD} runs (a thread's runs spread over the table), ` +
      `${settings.connections} connections, ${settings.rounds} interleaved rounds of ${settings.seconds} s at each size (medians)\n`,
    '| runs in the table | Runway p50 | Runway req/s | baseline p50 | baseline req/s |',
    '| ---: | ---: | ---: | ---: | ---: |',
    row(SMALL, small),
    row(largeRows, large),
    `\np50 at ${n(largeRows)} / p50 at ${n(SMALL)}: Runway **${growth('runway', (x) => x.p50)}x** (target: at most 1.2x), ` +
      `baseline ${growth('baseline', (x) => x.p50)}x; req/s: Runway ${growth('runway', (x) => x.rps)}x, baseline ${growth('baseline', (x) => x.rps)}x`,
  ].join('\n');
}

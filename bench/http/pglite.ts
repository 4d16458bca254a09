/**
 * The `pglite` scenario: the read table with Runway on embedded PGlite (the database in
 * Runway's own process) instead of PostgreSQL. PGlite lives in one process, so the bench
 * seeds a data directory, closes it, and only then starts Runway on it. The baseline stays
 * on PostgreSQL, with the same rows (the seeding writes the same ids on both), and is
 * measured in the same interleaved rounds, for scale.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { openDatabase } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import {
  fmt,
  interleaved,
  load,
  log,
  med,
  medianRatio,
  post,
  RUN_NAME,
  scratchFile,
  startRunway,
  type Defer,
  type Settings,
  type Target,
} from './harness.js';
import { READS } from './operations.js';
import { pgliteRunner, seed, type Seeded } from './seed.js';

async function seedPglite(dir: string, now: number, threads: number, runsPerThread: number): Promise<Seeded> {
  const database = await openDatabase({ pgliteDir: dir });
  try {
    if (database.driver !== 'pglite') throw new Error('expected PGlite');
    await migrate(database);
    return await seed(pgliteRunner(database.client), now, threads, runsPerThread, log);
  } finally {
    await database.close();
  }
}

/** Measures run, runs and nested; returns the scenario's table. */
export async function measurePglite(
  baseline: Target,
  settings: Settings,
  data: { now: number; threads: number; runsPerThread: number },
  defer: Defer,
): Promise<string> {
  const dir = join(tmpdir(), `${RUN_NAME}-pglite`);
  defer(async () => rmSync(dir, { recursive: true, force: true }));
  log(`pglite: seeding ${data.threads} threads x ${data.runsPerThread} runs (with messages and steps)...`);
  const started = Date.now();
  const seeded = await seedPglite(dir, data.now, data.threads, data.runsPerThread);
  log(`pglite: seeded in ${fmt((Date.now() - started) / 1000)} s`);
  const idsFile = scratchFile('pglite-ids', seeded.runs, defer);

  // No DATABASE_URL (empty is unset): Runway opens PGlite in PGLITE_DIR.
  const runway = await startRunway('runway-pglite', 'pglite-runway', { DATABASE_URL: '', PGLITE_DIR: dir });
  defer(runway.stop);
  const targets = [baseline, runway.target];

  // The same rows on both, so the same answers, or the comparison means nothing.
  const [threadId, runId] = seeded.runs[123 % seeded.runs.length]!;
  for (const scenario of READS) {
    const [a, b] = await Promise.all(targets.map((t) => post(t, scenario, { threadId, runId })));
    if (!isDeepStrictEqual(a, b))
      throw new Error(`pglite ${scenario}: responses differ\nbaseline: ${JSON.stringify(a)}\nrunway:   ${JSON.stringify(b)}`);
  }
  log(`pglite: Runway on PGlite and the baseline on PostgreSQL give the same JSON for ${READS.join(', ')}`);

  const rows: string[] = [];
  for (const scenario of READS) {
    const s = await interleaved(targets, settings, `pglite ${scenario}`, (t, seconds) =>
      load(t, { scenario, idsFile }, seconds, settings.connections),
    );
    const p = s['runway-pglite']!;
    const b = s.baseline!;
    rows.push(
      `| ${scenario} | ${fmt(med(p, (x) => x.rps))} | ${med(p, (x) => x.p50)} ms | ${med(p, (x) => x.p99)} ms | ` +
        `${fmt(
          med(p, (x) => x.cpuMsPerRequest),
          3,
        )} | ${fmt(med(b, (x) => x.rps))} | ${fmt(
          medianRatio(p, b, (x) => x.rps),
          2,
        )}x |`,
    );
  }
  await runway.stop();
  return [
    `\nRunway on PGlite (embedded: the database works in Runway's process) vs the baseline on PostgreSQL, ` +
      `${seeded.runs.length} runs, ${settings.connections} connections, ${settings.rounds} interleaved rounds of ${settings.seconds} s (medians)\n`,
    '| scenario | PGlite req/s | p50 | p99 | CPU ms/req (with the database) | baseline req/s | ratio |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

/**
 * The `create` scenario: createRun throughput. Every request goes to a thread that never
 * had a run (a thread holds one active run at a time, and Runway runs here as a gateway
 * without a worker, so every run it creates stays queued): a list of fresh threads,
 * handed out in order across all loads of both targets, so neither asks a thread the
 * other (or itself) already used.
 */
import { isDeepStrictEqual } from 'node:util';
import type postgres from 'postgres';
import { interleaved, load, log, post, scratchFile, type Defer, type Sample, type Settings, type Target } from './harness.js';
import { BENCH_ASSISTANT, postgresRunner, seedEmptyThreads } from './seed.js';

const RUN_ID = /^run_[0-9A-HJKMNP-TV-Z]{26}$/;
const EXPECTED = { data: { createRun: { id: '<run id>', status: 'QUEUED' } } };

/** The answer with its (new, so different) run id replaced when it looks like one. */
function shape(answer: unknown): unknown {
  const run = (answer as { data?: { createRun?: { id?: unknown } } })?.data?.createRun;
  if (typeof run?.id !== 'string' || !RUN_ID.test(run.id)) return answer;
  return { ...(answer as object), data: { createRun: { ...run, id: '<run id>' } } };
}

/**
 * What a created run left in the database, minus what differs between any two runs (ids,
 * times): the run's columns, its events, its thread's run count.
 */
async function written(sql: postgres.Sql, runId: string): Promise<unknown> {
  const [row] = await sql`
    select to_jsonb(r) - 'id' - 'thread_id' - 'created_at' - 'expires_at' as run,
      r.expires_at - r.created_at as expires_after,
      (select jsonb_agg(to_jsonb(e) - 'run_id' - 'thread_id' - 'at' || jsonb_build_object('after', e.at - r.created_at)
         order by e.version) from run_events e where e.run_id = r.id) as events,
      (select run_count from threads t where t.id = r.thread_id) as run_count
    from runs r where r.id = ${runId}`;
  return row;
}

/** Both answer createRun alike, and both leave the same rows behind: else the comparison means nothing. */
async function checkSame(sql: postgres.Sql, targets: Target[], threads: string[]): Promise<number> {
  const rows: unknown[] = [];
  for (const [i, t] of targets.entries()) {
    const answer = await post(t, 'create', { threadId: threads[i]!, assistantId: BENCH_ASSISTANT });
    if (!isDeepStrictEqual(shape(answer), EXPECTED)) {
      throw new Error(`create: ${t.name} answered ${JSON.stringify(answer)}, expected ${JSON.stringify(EXPECTED)} (any run id)`);
    }
    rows.push(await written(sql, (answer as typeof EXPECTED).data.createRun.id));
  }
  if (!rows.every((r) => isDeepStrictEqual(r, rows[0]))) {
    throw new Error(`create: the runs written differ\n${targets.map((t, i) => `${t.name}: ${JSON.stringify(rows[i])}`).join('\n')}`);
  }
  log(`create: both answer ${JSON.stringify(EXPECTED)} and write the same run, event and run count`);
  return targets.length;
}

/**
 * Seeds `count` fresh threads after the data set's `firstThread` threads, then measures
 * createRun on both targets in interleaved rounds.
 */
export async function measureCreate(
  sql: postgres.Sql,
  targets: Target[],
  settings: Settings,
  data: { now: number; firstThread: number; count: number },
  defer: Defer,
): Promise<Record<string, Sample[]>> {
  log(`create: seeding ${data.count} threads without runs...`);
  const threads = await seedEmptyThreads(postgresRunner(sql), data.now, data.firstThread, data.count);
  const threadsFile = scratchFile('create-threads', threads, defer);
  let offset = await checkSame(sql, targets, threads);
  const samples = await interleaved(targets, settings, 'create', async (target, seconds) => {
    const s = await load(target, { scenario: 'create', threadsFile, offset, assistantId: BENCH_ASSISTANT }, seconds, settings.connections);
    offset += s.used;
    return s;
  });
  log(`create: ${offset} of ${threads.length} fresh threads used`);
  return samples;
}

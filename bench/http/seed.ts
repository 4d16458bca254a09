/**
 * The benchmark's data sets, written by SQL alone (insert ... select ... from
 * generate_series): one seeding serves PostgreSQL and PGlite, and, given the same `now`,
 * writes the same rows, ids included, on both, so both can be asked the same question and
 * must give the same answer. Everything is in project `bench`.
 *
 * Ids look like Runway's (a type prefix and 26 Crockford base32 characters: 10 of time in
 * ms, 16 of sequence), and increase with creation order, as keyset pagination expects.
 */
import type { PGlite } from '@electric-sql/pglite';
import type postgres from 'postgres';

export const BENCH_PROJECT = 'bench';

/** Runs SQL text on either driver. */
export interface SqlRunner {
  exec(text: string): Promise<void>;
  rows<T>(text: string): Promise<T[]>;
}

export function postgresRunner(sql: postgres.Sql): SqlRunner {
  return {
    exec: async (text) => void (await sql.unsafe(text)),
    rows: async <T>(text: string) => (await sql.unsafe(text)) as unknown as T[],
  };
}

export function pgliteRunner(client: PGlite): SqlRunner {
  return {
    exec: async (text) => void (await client.exec(text)),
    rows: async <T>(text: string) => (await client.query<T>(text)).rows,
  };
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** SQL: the bigint expression `n` as `length` Crockford base32 characters, most significant first. */
function base32(n: string, length: number): string {
  const chars: string[] = [];
  for (let i = length - 1; i >= 0; i--) {
    // A bigint has 63 bits: higher digits are always 0 (and >> 64 is not defined).
    chars.push(5 * i >= 63 ? `'0'` : `substr('${CROCKFORD}', (((${n}) >> ${5 * i}) & 31)::int + 1, 1)`);
  }
  return chars.join(' || ');
}

/** SQL: an id made at `unixSeconds` (expression), `seq` (expression) of its kind, as `prefix_<26 chars>`. */
export function idSql(prefix: string, unixSeconds: string, seq: string): string {
  return `'${prefix}_' || ${base32(`(${unixSeconds})::bigint * 1000`, 10)} || ${base32(`(${seq})::bigint`, 16)}`;
}

/** The one assistant every seeded run belongs to (fixed, so it is the same on every database). */
export const BENCH_ASSISTANT = 'asst_00000000000000000000000000';

const USAGE = `'{"promptTokens":12,"completionTokens":7,"totalTokens":19}'::jsonb`;

/** Thread `t` (expression) of a data set seeded at `now`. */
const threadIdSql = (now: number, t: string) => idSql('thread', String(now), t);

async function insertAssistant(db: SqlRunner, now: number) {
  await db.exec(`insert into assistants (id, project_id, created_at, model, instructions, tools, metadata)
    values ('${BENCH_ASSISTANT}', '${BENCH_PROJECT}', ${now}, 'scripted', 'Be brief.', '[]', '{}')`);
}

async function insertThreads(db: SqlRunner, now: number, from: number, to: number, runCount: number) {
  await db.exec(`insert into threads (id, project_id, created_at, metadata, run_count)
    select ${threadIdSql(now, 't')}, '${BENCH_PROJECT}', ${now}, '{"seeded":"yes"}', ${runCount}
    from generate_series(${from}, ${to - 1}) t`);
}

/**
 * The runs of `source`, a query with columns t (thread number), k (0-based place in the
 * thread), seq (creation order) and at (created_at), as completed runs.
 */
function insertRunsSql(now: number, source: string): string {
  return `insert into runs (id, project_id, thread_id, assistant_id, created_at, thread_seq, status, previous_status,
      version, started_at, completed_at, model, instructions, tools, metadata, usage, temperature, top_p,
      truncation_strategy, tool_choice, parallel_tool_calls, response_format)
    select run_id, '${BENCH_PROJECT}', thread_id, '${BENCH_ASSISTANT}', at, k + 1, 'completed'::run_status,
      'in_progress'::run_status, 3, at, at + 1, 'scripted', 'Be brief.', '[]'::jsonb, jsonb_build_object('n', k::text),
      ${USAGE}, 1, 1, '{"type":"auto","lastMessages":null}'::jsonb, '{"mode":"auto"}'::jsonb, true,
      '{"type":"auto"}'::jsonb
    from (select s.*, ${idSql('run', 'at', 'seq')} as run_id, ${threadIdSql(now, 't')} as thread_id from (${source}) s) s
    order by seq`;
}

export interface Seeded {
  /** [threadId, runId] pairs, every run. */
  runs: [string, string][];
}

/**
 * `threads` threads of `runsPerThread` runs each, a thread's runs made one after the other
 * (then the next thread's), every run completed with a user message, an assistant message,
 * a MESSAGE_CREATION step and its three events. Run n of the data set was created at
 * `now + n`.
 */
export async function seed(db: SqlRunner, now: number, threads: number, runsPerThread: number, log = (_: string) => {}): Promise<Seeded> {
  await insertAssistant(db, now);
  await insertThreads(db, now, 0, threads, runsPerThread);
  // A few thousand runs per statement: PGlite holds a statement's work in its own memory.
  const chunk = Math.max(1, Math.floor(5000 / runsPerThread));
  for (let from = 0; from < threads; from += chunk) {
    const to = Math.min(threads, from + chunk);
    const source = `select t, k, t * ${runsPerThread} + k as seq, ${now} + t * ${runsPerThread} + k as at
      from generate_series(${from}, ${to - 1}) t, generate_series(0, ${runsPerThread - 1}) k`;
    // One statement: the other rows are made from the runs it inserts, as it returns them.
    await db.exec(`with r as (${insertRunsSql(now, source)} returning id, thread_id, thread_seq, created_at, assistant_id),
      events as (insert into run_events (run_id, version, thread_id, thread_seq, from_status, to_status, at)
        select r.id, e.version, r.thread_id, r.thread_seq, e.from_status, e.to_status, r.created_at
        from r, (values (1, null::run_status, 'queued'::run_status), (2, 'queued', 'in_progress'),
          (3, 'in_progress', 'completed')) e (version, from_status, to_status)
        order by r.id, e.version),
      msgs as (insert into messages (id, thread_id, created_at, role, content, run_id, assistant_id, metadata)
        select ${idSql('msg', 'm.at', '2 * m.seq + m.n')}, m.thread_id, m.at, m.role::message_role, m.content, m.run_id,
          m.assistant_id, '{}'::jsonb
        from (select r.thread_id, r.created_at - ${now} as seq, r.created_at + n as at, n,
                case n when 0 then 'user' else 'assistant' end as role,
                case n when 0 then 'question ' else 'answer ' end || (r.thread_seq - 1) as content,
                case n when 0 then null else r.id end as run_id,
                case n when 0 then null else r.assistant_id end as assistant_id
              from r, generate_series(0, 1) n) m
        order by m.seq, m.n)
      insert into run_steps (id, run_id, thread_id, assistant_id, created_at, type, status, completed_at, step_details, usage)
        select ${idSql('step', 'r.created_at + 1', `r.created_at - ${now}`)}, r.id, r.thread_id, r.assistant_id,
          r.created_at + 1, 'message_creation'::run_step_type, 'completed'::run_step_status, r.created_at + 1,
          jsonb_build_object('type', 'message_creation', 'messageCreation',
            jsonb_build_object('messageId', ${idSql('msg', 'r.created_at + 1', `2 * (r.created_at - ${now}) + 1`)})),
          ${USAGE}
        from r
        order by r.id`);
    if (Math.floor(to / 100) > Math.floor(from / 100) || to === threads) log(`seeded ${to}/${threads} threads`);
  }
  await db.exec('vacuum analyze');
  const runs = await db.rows<{ thread_id: string; id: string }>('select thread_id, id from runs order by id');
  return { runs: runs.map((r) => [r.thread_id, r.id]) };
}

/**
 * `count` threads without runs, numbered from `from` on (after a data set's threads): one
 * for each createRun the benchmark makes. Returns their ids, in order.
 */
export async function seedEmptyThreads(db: SqlRunner, now: number, from: number, count: number): Promise<string[]> {
  await insertThreads(db, now, from, from + count, 0);
  await db.exec('analyze threads');
  const rows = await db.rows<{ id: string }>(`select id from threads where run_count = 0 order by id`);
  return rows.map((r) => r.id);
}

/**
 * The growth data set, runs only (the query reads nothing else): threads [from, to) get
 * `runsPerThread` runs each, made in turns (one run of each thread, then the next round), as
 * runs of many threads accumulate in production: a thread's runs end up spread over the
 * table, not side by side. Run numbers continue from `firstSeq`; run n was created at
 * `now + n`. Starts with the assistant when `firstSeq` is 0.
 */
export async function seedGrowth(
  db: SqlRunner,
  now: number,
  threads: { from: number; to: number },
  runsPerThread: number,
  firstSeq: number,
  log = (_: string) => {},
): Promise<void> {
  if (firstSeq === 0) await insertAssistant(db, now);
  await insertThreads(db, now, threads.from, threads.to, runsPerThread);
  const width = threads.to - threads.from;
  // A round or more of every thread per statement, about 100,000 runs.
  const roundsPerStatement = Math.max(1, Math.floor(100_000 / width));
  for (let k0 = 0; k0 < runsPerThread; k0 += roundsPerStatement) {
    const k1 = Math.min(runsPerThread, k0 + roundsPerStatement);
    const seq = `${firstSeq} + k * ${width} + (t - ${threads.from})`;
    await db.exec(
      insertRunsSql(
        now,
        `select t, k, ${seq} as seq, ${now} + ${seq} as at
        from generate_series(${k0}, ${k1 - 1}) k, generate_series(${threads.from}, ${threads.to - 1}) t`,
      ),
    );
    log(`growth: ${firstSeq + k1 * width} runs`);
  }
  // Vacuumed, not only analyzed: autovacuum would otherwise get to a freshly filled table
  // in the middle of a measurement.
  await db.exec('vacuum analyze runs');
  await db.exec('vacuum analyze threads');
}

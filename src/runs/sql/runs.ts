/**
 * Reads of runs (and of the messages the engine prompts with), and their metadata update.
 */
import { and, asc, desc, eq, inArray, sql, type Placeholder, type SQL } from 'drizzle-orm';
import type { Db, Executor } from '../../db/client.js';
import { joinedRowRead, rowRead } from '../../db/row-reads.js';
import { planKeysetPage, type KeysetPlan, type Page, type PageArgs } from '../../db/keyset.js';
import { preparedPer } from '../../db/prepared.js';
import { messages, runs, threads, type MessageRow, type RunRow } from '../../db/schema.js';
import type { RunStatus } from '../../domain/run-lifecycle.js';

// The two reads of every run poll and status check: row reads (db/row-reads.ts).
const runById = rowRead(runs, (db) =>
  db
    .select()
    .from(runs)
    .where(eq(runs.id, sql.placeholder('runId')))
    .limit(1),
);

export async function findRun(db: Db, runId: string): Promise<RunRow | undefined> {
  const [run] = await runById(db, { runId });
  return run;
}

const runInProject = rowRead(runs, (db) =>
  db
    .select()
    .from(runs)
    .where(and(eq(runs.id, sql.placeholder('runId')), eq(runs.projectId, sql.placeholder('projectId'))))
    .limit(1),
);

/** The run, if it exists in this project: another project's run is as absent as a missing one. */
export function findRunInProject(db: Db, projectId: string, runId: string): Promise<RunRow | undefined> {
  return runInProject(db, { runId, projectId }).then(first);
}
const first = <T>(rows: T[]): T | undefined => rows[0];

/** The run, if it exists in this thread of this project (the same read: a run never changes thread). */
export function findRunInThread(db: Db, projectId: string, threadId: string, runId: string): Promise<RunRow | undefined> {
  return runInProject(db, { runId, projectId }).then((rows) => (rows[0]?.threadId === threadId ? rows[0] : undefined));
}

/**
 * A page of the thread's runs, read from the thread's row in the project: the page is
 * joined to it (lateral), so one statement tells a thread with no runs (its row, with no
 * run) from a missing or foreign thread (no row at all).
 */
function runsPageOfThread(ex: Executor, plan: KeysetPlan, statuses: readonly RunStatus[] | null | undefined, limit: number | Placeholder) {
  const page = ex
    .select()
    .from(runs)
    .where(and(eq(runs.threadId, threads.id), statusIn(statuses), plan.where(runs.id)))
    .orderBy(plan.orderBy(runs.id))
    .limit(limit)
    .as('page');
  return ex
    .select({ run: page._.selectedFields })
    .from(threads)
    .leftJoinLateral(page, sql`true`)
    .where(and(eq(threads.id, sql.placeholder('threadId')), eq(threads.projectId, sql.placeholder('projectId'))))
    .orderBy(plan.orderBy(page.id));
}

/**
 * Each status once: a list of any length (70,000 fit in a request) is at most nine
 * parameters, well within PostgreSQL's 65,535.
 */
function statusIn(statuses: readonly RunStatus[] | null | undefined): SQL | undefined {
  return statuses?.length ? inArray(runs.status, [...new Set(statuses)]) : undefined;
}

/** The first page of a thread, whichever order (what lists show): a row read, the thread's row with no run a null. */
const firstRunsOfThread = (order: 'asc' | 'desc') =>
  joinedRowRead(runs, (db) => runsPageOfThread(db, planKeysetPage({ order }, 'run'), undefined, sql.placeholder('limit')));

const firstRunsOfThreadAscending = firstRunsOfThread('asc');

const firstRunsOfThreadDescending = firstRunsOfThread('desc');

/**
 * A page of the thread's runs, or undefined when the project has no such thread: one
 * statement either way.
 */
export async function listRunsInProject(
  db: Db,
  projectId: string,
  threadId: string,
  args: PageArgs,
  statuses?: readonly RunStatus[] | null,
): Promise<Page<RunRow> | undefined> {
  const plan = planKeysetPage(args, 'run');
  const values = { threadId, projectId, limit: plan.limit };
  const firstPage = !statuses?.length && args.after == null && args.before == null && args.last == null;
  const rows = firstPage
    ? await ((args.order ?? 'desc') === 'asc' ? firstRunsOfThreadAscending : firstRunsOfThreadDescending)(db, values)
    : (await runsPageOfThread(db, plan, statuses, plan.limit).execute(values)).map((row) => row.run);
  if (rows.length === 0) return undefined;
  return plan.page(rows.filter((run) => run !== null));
}

const runsInProject = preparedPer((ex) =>
  ex
    .select()
    .from(runs)
    .where(and(sql`${runs.id} = any(${sql.placeholder('ids')}::text[])`, eq(runs.projectId, sql.placeholder('projectId'))))
    .prepare('runs_in_project'),
);

/** Those of these runs that are in this project, in no particular order: one statement. */
export async function findRunsInProject(ex: Executor, projectId: string, ids: readonly string[]): Promise<RunRow[]> {
  return runsInProject(ex).execute({ ids: [...ids], projectId });
}

const firstRuns = (order: 'asc' | 'desc') =>
  preparedPer((ex) =>
    ex
      .select()
      .from(runs)
      .where(eq(runs.threadId, sql.placeholder('threadId')))
      .orderBy(order === 'asc' ? asc(runs.id) : desc(runs.id))
      .limit(sql.placeholder('limit'))
      .prepare(`first_runs_${order}`),
  );

const firstRunsAscending = firstRuns('asc');

const firstRunsDescending = firstRuns('desc');

/** A page of the runs of a thread already known to be the caller's. */
export async function listRuns(
  ex: Executor,
  threadId: string,
  args: PageArgs,
  statuses?: readonly RunStatus[] | null,
): Promise<Page<RunRow>> {
  const plan = planKeysetPage(args, 'run');
  // The first page of a thread, whichever order (what lists show): a prepared statement.
  if (!statuses?.length && args.after == null && args.before == null && args.last == null) {
    const statement = (args.order ?? 'desc') === 'asc' ? firstRunsAscending(ex) : firstRunsDescending(ex);
    return plan.page(await statement.execute({ threadId, limit: plan.limit }));
  }
  const rows = await ex
    .select()
    .from(runs)
    .where(and(eq(runs.threadId, threadId), statusIn(statuses), plan.where(runs.id)))
    .orderBy(plan.orderBy(runs.id))
    .limit(plan.limit);
  return plan.page(rows);
}

export async function updateRunMetadata(ex: Executor, runId: string, metadata: Record<string, string>): Promise<RunRow | undefined> {
  const [run] = await ex.update(runs).set({ metadata }).where(eq(runs.id, runId)).returning();
  return run;
}

/** Every message of each of these threads, oldest first: one statement for the lot. */
export async function messagesOfThreads(ex: Executor, threadIds: readonly string[]): Promise<Map<string, MessageRow[]>> {
  const rows = await ex
    .select()
    .from(messages)
    .where(inArray(messages.threadId, [...threadIds]))
    .orderBy(asc(messages.threadId), asc(messages.id));
  return groupBy(threadIds, rows, (r) => r.threadId);
}

export function groupBy<T>(keys: readonly string[], rows: T[], keyOf: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>(keys.map((k) => [k, []]));
  for (const row of rows) groups.get(keyOf(row))?.push(row);
  return groups;
}

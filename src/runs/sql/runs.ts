/**
 * Reads of runs (and of the messages the engine prompts with), and their metadata update.
 */
import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { planKeysetPage, type Page, type PageArgs } from '../../db/keyset.js';
import { preparedPer } from '../../db/prepared.js';
import { messages, runs, type MessageRow, type RunRow } from '../../db/schema.js';
import type { RunStatus } from '../../domain/run-lifecycle.js';

const runById = preparedPer((ex) =>
  ex.select().from(runs).where(eq(runs.id, sql.placeholder('runId'))).limit(1).prepare('run_by_id'),
);

export async function findRun(ex: Executor, runId: string): Promise<RunRow | undefined> {
  const [run] = await runById(ex).execute({ runId });
  return run;
}

const runInProject = preparedPer((ex) =>
  ex
    .select()
    .from(runs)
    .where(and(eq(runs.id, sql.placeholder('runId')), eq(runs.projectId, sql.placeholder('projectId'))))
    .limit(1)
    .prepare('run_in_project'),
);

/** The run, if it exists in this project: another project's run is as absent as a missing one. */
export async function findRunInProject(ex: Executor, projectId: string, runId: string): Promise<RunRow | undefined> {
  const [run] = await runInProject(ex).execute({ runId, projectId });
  return run;
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

export async function listRuns(
  ex: Executor,
  threadId: string,
  args: PageArgs,
  statuses?: readonly RunStatus[] | null,
): Promise<Page<RunRow>> {
  const plan = planKeysetPage(runs.id, args, 'run');
  // The first page of a thread, whichever order (what lists show): a prepared statement.
  if (!statuses?.length && args.after == null && args.before == null && args.last == null) {
    const statement = (args.order ?? 'desc') === 'asc' ? firstRunsAscending(ex) : firstRunsDescending(ex);
    return plan.page(await statement.execute({ threadId, limit: plan.limit }));
  }
  const rows = await ex
    .select()
    .from(runs)
    .where(
      and(
        eq(runs.threadId, threadId),
        // Each status once: a list of any length (70,000 fit in a request) is at most nine
        // parameters, well within PostgreSQL's 65,535.
        statuses && statuses.length > 0 ? inArray(runs.status, [...new Set(statuses)]) : undefined,
        plan.where,
      ),
    )
    .orderBy(plan.orderBy)
    .limit(plan.limit);
  return plan.page(rows);
}

export async function updateRunMetadata(
  ex: Executor,
  runId: string,
  metadata: Record<string, string>,
): Promise<RunRow | undefined> {
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

/**
 * Run steps: opened, completed, read by run and paged.
 */
import { and, asc, eq, getTableColumns, inArray, lte, sql } from 'drizzle-orm';
import type { Db, Executor } from '../../db/client.js';
import { planKeysetPage, type Page, type PageArgs } from '../../db/keyset.js';
import { preparedPer } from '../../db/prepared.js';
import { rowRead } from '../../db/row-reads.js';
import { runs, runSteps, type RunStepRow } from '../../db/schema.js';
import type { StepDetails } from '../../domain/run.js';
import { groupBy } from './runs.js';

export type NewRunStep = typeof runSteps.$inferInsert;

export async function insertRunStep(ex: Executor, step: NewRunStep): Promise<void> {
  await ex.insert(runSteps).values(step);
}

/** The run's TOOL_CALLS step still waiting for outputs, if any. */
export async function findOpenToolCallsStep(ex: Executor, runId: string): Promise<RunStepRow | undefined> {
  const [row] = await ex
    .select()
    .from(runSteps)
    .where(and(eq(runSteps.runId, runId), eq(runSteps.type, 'tool_calls'), eq(runSteps.status, 'in_progress')))
    .orderBy(asc(runSteps.id))
    .limit(1);
  return row;
}

export async function completeRunStep(ex: Executor, stepId: string, at: number, stepDetails: StepDetails): Promise<void> {
  await ex.update(runSteps).set({ status: 'completed', completedAt: at, stepDetails }).where(eq(runSteps.id, stepId));
}

/** Every step of each of these runs, oldest first: one statement for the lot. */
export async function stepsOfRuns(ex: Executor, runIds: readonly string[]): Promise<Map<string, RunStepRow[]>> {
  const rows = await ex
    .select()
    .from(runSteps)
    .where(inArray(runSteps.runId, [...runIds]))
    .orderBy(asc(runSteps.runId), asc(runSteps.id));
  return groupBy(runIds, rows, (r) => r.runId);
}

export async function pageRunSteps(ex: Executor, runId: string, args: PageArgs): Promise<Page<RunStepRow>> {
  const plan = planKeysetPage(args, 'step');
  const rows = await ex
    .select()
    .from(runSteps)
    .where(and(eq(runSteps.runId, runId), plan.where(runSteps.id)))
    .orderBy(plan.orderBy(runSteps.id))
    .limit(plan.limit);
  return plan.page(rows);
}

/**
 * One statement whatever the number of runs: the ids travel as one array parameter. A row
 * read (db/row-reads.ts): the step's columns come first, in their order; the rank after
 * them is only for the statement.
 */
const firstSteps = (order: 'asc' | 'desc') =>
  rowRead(runSteps, (db) => {
    const ranked = db
      .select({
        ...getTableColumns(runSteps),
        rank: sql<number>`row_number() over (partition by ${runSteps.runId} order by ${runSteps.id} ${sql.raw(order)})`.as('rank'),
      })
      .from(runSteps)
      .where(sql`${runSteps.runId} = any(${sql.placeholder('runIds')}::text[])`)
      .as('ranked');
    return db
      .select()
      .from(ranked)
      .where(lte(ranked.rank, sql.placeholder('limit')))
      .orderBy(ranked.runId, ranked.rank);
  });

const firstStepsAscending = firstSteps('asc');

const firstStepsDescending = firstSteps('desc');

/**
 * The first `limit` steps of each of these runs, in one statement (a window over the
 * runs' steps), so a page of runs with their steps costs one query, not one per run.
 */
export async function firstStepsOfRuns(
  db: Db,
  runIds: readonly string[],
  order: 'asc' | 'desc',
  limit: number,
): Promise<Map<string, RunStepRow[]>> {
  const read = order === 'asc' ? firstStepsAscending : firstStepsDescending;
  const rows = await read(db, { runIds: [...runIds], limit });
  const byRun = new Map<string, RunStepRow[]>(runIds.map((id) => [id, []]));
  for (const step of rows) byRun.get(step.runId)?.push(step);
  return byRun;
}

const stepOfRunInProject = preparedPer((ex) =>
  ex
    .select({ step: runSteps })
    .from(runSteps)
    .innerJoin(runs, eq(runs.id, runSteps.runId))
    .where(
      and(
        eq(runSteps.id, sql.placeholder('stepId')),
        eq(runs.id, sql.placeholder('runId')),
        eq(runs.threadId, sql.placeholder('threadId')),
        eq(runs.projectId, sql.placeholder('projectId')),
      ),
    )
    .prepare('step_of_run_in_project'),
);

/**
 * The step, if it is a step of that run of that thread of that project: one statement
 * (a step of another project's run is as absent as a missing one).
 */
export async function findRunStepInProject(
  ex: Executor,
  projectId: string,
  threadId: string,
  runId: string,
  stepId: string,
): Promise<RunStepRow | undefined> {
  const [row] = await stepOfRunInProject(ex).execute({ projectId, threadId, runId, stepId });
  return row?.step;
}

const stepsInProject = preparedPer((ex) =>
  ex
    .select({ step: runSteps })
    .from(runSteps)
    .innerJoin(runs, eq(runs.id, runSteps.runId))
    .where(and(sql`${runSteps.id} = any(${sql.placeholder('ids')}::text[])`, eq(runs.projectId, sql.placeholder('projectId'))))
    .prepare('steps_in_project'),
);

/** Those of these steps whose run is in this project, in no particular order: one statement. */
export async function findRunStepsInProject(ex: Executor, projectId: string, ids: readonly string[]): Promise<RunStepRow[]> {
  const rows = await stepsInProject(ex).execute({ ids: [...ids], projectId });
  return rows.map((row) => row.step);
}

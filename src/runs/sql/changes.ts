/**
 * What every single-statement transition shares: the changed runs, their event rows, and
 * the one expression that announces them.
 */
import { getTableColumns, sql, type SQLWrapper, type WithSubquery } from 'drizzle-orm';
import type { WithSubqueryWithSelection } from 'drizzle-orm/pg-core';
import type { Db } from '../../db/client.js';
import { runEvents, runItemEvents, runs, type RunRow } from '../../db/schema.js';
import type { Announcer } from '../announcer.js';
import { eventOf, RUN_STATE } from './history.js';

/** What a statement needs to announce the event rows it writes. */
export type AnnounceEvents = Pick<Announcer, 'statusLine' | 'itemLine' | 'inStatement'>;

/** A CTE that inserted item events and returned their rows. */
export type InsertedItems = WithSubqueryWithSelection<typeof runItemEvents._.columns, string>;

/** The runs columns, to select from a CTE that returned whole rows. */
const RUN_COLUMNS = Object.keys(getTableColumns(runs)) as (keyof RunRow)[];

/**
 * What every single-statement transition shares: `changed` (a CTE that returned whole
 * run rows) gets its events inserted, and the statement selects the changed runs, plus
 * one expression that announces all their events at once (one notification per
 * statement, however many runs). Data-modifying CTEs run to completion whether or not
 * the main query reads them; the announcement is an uncorrelated subquery, evaluated once
 * and only if some run changed.
 */
type ChangedRuns = WithSubqueryWithSelection<typeof runs._.columns, 'changed'>;

export function changedRunsWithEvents(
  db: Db,
  ctes: { before?: WithSubquery[]; changed: ChangedRuns; after?: WithSubquery[]; items?: InsertedItems },
  at: SQLWrapper,
  announce: AnnounceEvents,
) {
  const { changed } = ctes;
  const events = db.$with('events').as(
    db
      .insert(runEvents)
      .select((qb) =>
        qb
          .select({
            runId: changed.id,
            version: changed.version,
            threadId: changed.threadId,
            threadSeq: changed.threadSeq,
            fromStatus: changed.previousStatus,
            toStatus: changed.status,
            at: sql`${at}::bigint`.as('at'),
            runState: sql`jsonb_build_object(${sql.join(
              RUN_STATE.map((k) => sql`${sql.raw(`'${k}'`)}, ${changed[k]}`),
              sql`, `,
            )})`.as('run_state'),
          })
          .from(changed),
      )
      .returning(),
  );
  const statusLine = announce.statusLine({
    runId: events.runId,
    threadId: events.threadId,
    threadSeq: events.threadSeq,
    version: events.version,
    status: events.toStatus,
    previousStatus: events.fromStatus,
    at: events.at,
  });
  const { items } = ctes;
  // The lines of every event the statement wrote, in their order: a run's item events
  // come before the status change that follows them.
  const lines = items
    ? sql`(select string_agg(l.line, E'\n' order by l.run_id, l.version, l.sub) from (
        select ${statusLine} as line, ${events.runId} as run_id, ${events.version} as version, 0 as sub from ${events}
        union all
        select ${announce.itemLine(items)} as line, ${items.runId}, ${items.version}, ${items.sub} from ${items}
      ) l)`
    : sql`(select string_agg(${statusLine}, E'\n' order by ${events.runId}, ${events.version}) from ${events})`;
  const announced = sql`(select ${announce.inStatement(lines)})`;
  const columns = Object.fromEntries(RUN_COLUMNS.map((k) => [k, changed[k]])) as unknown as ChangedRuns['_']['selectedFields'];
  return db
    .with(...(ctes.before ?? []), changed, ...(ctes.after ?? []), ...(items ? [items] : []), events)
    .select({ ...columns, announced: announced.as('announced') })
    .from(changed);
}

/** The changed runs and their events, from a statement built by changedRunsWithEvents. */
export function withEvents(rows: (RunRow & { announced: unknown })[], at: (run: RunRow) => number) {
  return rows.map(({ announced: _, ...run }) => ({ run, event: eventOf(run, at(run)) }));
}

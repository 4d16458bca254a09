/**
 * Where ids are mentioned in the database: every table of every schema but the system's,
 * found in the catalogue (so a table added later is searched too), each row read whole as
 * text, so that an id in any column, a JSON document or a payload is found.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client.js';

const rowsOf = (result: unknown) => ((result as { rows?: unknown[] }).rows ?? result) as Record<string, unknown>[];

/** Every table, as `schema.table`, with the number of its rows that mention any of `ids`. */
export async function rowsMentioning(db: Db, ids: readonly string[]): Promise<Record<string, number>> {
  const tables = rowsOf(
    await db.execute(sql`select table_schema as schema, table_name as name from information_schema.tables
      where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema') order by 1, 2`),
  ) as { schema: string; name: string }[];
  const list = sql`array[${sql.join(
    ids.map((id) => sql`${id}`),
    sql`, `,
  )}]::text[]`;
  const counts: Record<string, number> = {};
  for (const { schema, name } of tables) {
    const table = sql.raw(`"${schema}"."${name}"`);
    const [row] = rowsOf(
      await db.execute(
        sql`select count(*)::int as n from ${table} as r where exists (select 1 from unnest(${list}) as id where strpos(r::text, id) > 0)`,
      ),
    );
    counts[`${schema}.${name}`] = Number(row!['n']);
  }
  return counts;
}

/** Only the tables with rows that mention the ids. */
export function mentioned(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
}

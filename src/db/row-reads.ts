/**
 * Whole-row reads by a fixed statement, for the hottest reads (a run by its id, the first
 * pages of a thread's runs and messages, the first steps of a page of runs, a message by
 * its id as it ends under its run's subscribers). Drizzle builds the statement once (its
 * SQL and placeholders, from the query builder); each call sends it prepared, asks the
 * driver for rows as arrays and decodes them by column position with each column's own
 * decoder. The row is the object drizzle's `select()` gives (a spec
 * compares them on both drivers), without drizzle's generic per-row mapping and its layers
 * of promises: 8 to 13 µs of CPU less per REST run read, and half of the runs list's, in
 * side-by-side benches (docs/performance.md).
 */
import { Column, getTableColumns, getTableName, is, Placeholder, type InferSelectModel, type Table } from 'drizzle-orm';
import { arrayRowsOf, type Db } from './client.js';

/** A query builder of whole rows of one table (`db.select().from(table)...`), not prepared. */
interface WholeRowQuery {
  toSQL(): { sql: string; params: unknown[] };
}

/** One parameter of the statement: a placeholder's name, or a value fixed in the query. */
type Parameter = { name: string } | { value: unknown };

type Read<R> = (db: Db, values: Record<string, unknown>) => Promise<R[]>;

/**
 * Reads rows of `table` with the statement `build` makes; the returned function takes the
 * placeholders' values by name. Runs on a database opened by `openDatabase` (not in a
 * transaction: a prepared statement of the pool).
 */
export function rowRead<T extends Table>(table: T, build: (db: Db) => WholeRowQuery): Read<InferSelectModel<T>> {
  return reader(build, rowDecoder<InferSelectModel<T>>(table, false));
}

/**
 * {@link rowRead} of a left-joined table: its columns are the statement's, and a row where
 * the join found none (the table's primary key null) is null.
 */
export function joinedRowRead<T extends Table>(table: T, build: (db: Db) => WholeRowQuery): Read<InferSelectModel<T> | null> {
  return reader(build, rowDecoder<InferSelectModel<T> | null>(table, true));
}

function reader<R>(build: (db: Db) => WholeRowQuery, decode: (row: unknown[]) => R): Read<R> {
  let statement: { text: string; parameters: Parameter[] } | undefined;
  return (db, values) => {
    if (!statement) {
      // The SQL depends on the dialect only: the same for every database and driver.
      const { sql, params } = build(db).toSQL();
      statement = { text: sql, parameters: params.map((p) => (is(p, Placeholder) ? { name: p.name } : { value: p })) };
    }
    const { text, parameters } = statement;
    const params = parameters.map((p) => ('name' in p ? values[p.name] : p.value));
    return arrayRowsOf(db)(text, params, decode);
  };
}

/**
 * Decodes a row of `table`'s columns, in their order, as drizzle's select() of the whole
 * table does: a function made once per table whose object literal has the row's shape
 * (a loop assigning keys one by one cost more than the statement's own parsing), calling
 * a column's decoder only where it has one of its own (bigint seconds, JSON, dates).
 */
function rowDecoder<R>(table: Table, joined: boolean): (row: unknown[]) => R {
  const columns = Object.entries(getTableColumns(table)) as [string, Column][];
  const identity = Column.prototype.mapFromDriverValue;
  const fields = columns.map(([key, column], i) => {
    const value = `r[${i}]`;
    const decoded = column.mapFromDriverValue === identity ? value : `${value} === null ? null : c[${i}].mapFromDriverValue(${value})`;
    return `${JSON.stringify(key)}: ${decoded}`;
  });
  const keys = columns.flatMap(([, column], i) => (column.primary ? [i] : []));
  if (joined && !keys.length) throw new Error(`${getTableName(table)}: a joined row read needs the table's primary key`);
  const none = joined ? `${keys.map((i) => `r[${i}] === null`).join(' && ')} ? null : ` : '';
  // Keys are the schema's own property names, quoted; values are positions: nothing from the database is code.
  const make = new Function('c', `return (r) => ${none}({ ${fields.join(', ')} })`) as (c: Column[]) => (row: unknown[]) => R;
  return make(columns.map(([, column]) => column));
}

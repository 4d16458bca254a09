/**
 * Prepared statements for the hot reads. Drizzle builds a query's SQL on every call and
 * sends it unnamed (PostgreSQL parses and plans it again) unless the query is prepared;
 * `.prepare(name)` does both once. A prepared statement belongs to the executor it was
 * built on (the database, or one transaction), so it is built per executor, on first use.
 */
import type { Executor } from './client.js';

export function preparedPer<P>(build: (ex: Executor) => P): (ex: Executor) => P {
  const built = new WeakMap<Executor, P>();
  return (ex) => {
    let statement = built.get(ex);
    if (!statement) {
      statement = build(ex);
      built.set(ex, statement);
    }
    return statement;
  };
}

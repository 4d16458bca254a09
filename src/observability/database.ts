/**
 * The database client, observed at the level drizzle calls it: postgres.js's `unsafe()`
 * and `begin()`, PGlite's `query()` and `transaction()`. What it counts: connections in
 * use (a statement outside a transaction, or a whole transaction), per pool; with tracing
 * on, a span per statement (its SQL text, never its parameters) and per transaction.
 *
 * postgres.js's queries are lazy promises that run when first awaited: the statement is
 * counted from then (not from when drizzle built it) until it settles.
 */
import type { PGlite, Transaction } from '@electric-sql/pglite';
import type postgres from 'postgres';
import { busyConnections, dbPoolSize } from './metrics.js';
import { failed, SpanKind, startSpan, tracingOn, inSpan } from './tracing.js';

type Busy = { inc(): void; dec(): void };

/** The span's name: the statement's first keyword (`select`, `insert`, `with`...). */
function operation(text: string): string {
  const m = /^\s*(\w+)/.exec(text);
  return m?.[1]?.toLowerCase() ?? 'query';
}

const statementAttributes = (text: string) => ({ 'db.system.name': 'postgresql', 'db.query.text': text });

/** Starts observing one statement; the returned function ends it (with its error, if any). */
function statementStarted(text: string, busy: Busy | undefined): (error?: unknown) => void {
  busy?.inc();
  const span = tracingOn ? startSpan(`db ${operation(text)}`, statementAttributes(text), SpanKind.CLIENT) : undefined;
  return (error?: unknown) => {
    busy?.dec();
    if (!span) return;
    if (error !== undefined) failed(span, error);
    span.end();
  };
}

type Unsafe = postgres.Sql['unsafe'];

/** Observes the statements `sql.unsafe` sends; `busy`: counted as a connection in use. */
function observeUnsafe(sql: Pick<postgres.Sql, 'unsafe'>, busy: Busy | undefined): void {
  const unsafe: Unsafe = sql.unsafe.bind(sql);
  sql.unsafe = function observedUnsafe(...args: Parameters<Unsafe>) {
    const query = unsafe(...args);
    const then = query.then;
    let started = false;
    query.then = function observedThen(this: typeof query, ...handlers: Parameters<typeof then>) {
      if (!started) {
        started = true;
        const end = statementStarted(String(args[0]), busy);
        then.call(
          this,
          () => end(),
          (error: unknown) => end(error),
        );
      }
      return then.apply(this, handlers);
    } as typeof then;
    return query;
  } as Unsafe;
}

/**
 * Observes the client's statements and transactions. Returns how to observe a statement
 * sent through the `unsafe` the client had before (the hottest reads: their queries are
 * not wrapped, which keeps postgres.js's query objects all of one shape); the returned
 * function ends it.
 */
export function observePostgres(client: postgres.Sql, pool: string, size: number): (text: string) => (error?: unknown) => void {
  const busy = busyConnections(pool);
  dbPoolSize.labels(pool).inc(size);
  observeUnsafe(client, busy);
  const begin = client.begin.bind(client) as (options: string, fn: (tx: postgres.TransactionSql) => unknown) => Promise<unknown>;
  client.begin = function observedBegin(options: unknown, fn?: unknown) {
    const [opts, body] = (typeof options === 'function' ? ['', options] : [options, fn]) as [
      string,
      (tx: postgres.TransactionSql) => unknown,
    ];
    busy.inc();
    const run = () =>
      begin(opts, (tx) => {
        observeUnsafe(tx, undefined);
        return body(tx);
      });
    return inSpan('db transaction', { 'db.system.name': 'postgresql' }, run, SpanKind.CLIENT).finally(() => busy.dec());
  } as postgres.Sql['begin'];
  return (text) => statementStarted(text, busy);
}

/** The pool's size is no longer counted (the client was closed). */
export function forgetPool(pool: string, size: number): void {
  dbPoolSize.labels(pool).dec(size);
}

export function observePglite(client: PGlite, pool: string): void {
  const busy = busyConnections(pool);
  dbPoolSize.labels(pool).inc(1);
  const observeQuery = (target: PGlite | Transaction, counted: Busy | undefined) => {
    const query = target.query.bind(target) as (text: string, ...rest: unknown[]) => Promise<unknown>;
    target.query = async function observedQuery(text: string, ...rest: unknown[]) {
      const end = statementStarted(text, counted);
      try {
        const result = await query(text, ...rest);
        end();
        return result;
      } catch (error) {
        end(error);
        throw error;
      }
    } as PGlite['query'];
  };
  observeQuery(client, busy);
  const transaction = client.transaction.bind(client);
  client.transaction = function observedTransaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    busy.inc();
    const run = () =>
      transaction((tx) => {
        observeQuery(tx, undefined);
        return fn(tx);
      });
    return inSpan('db transaction', { 'db.system.name': 'postgresql' }, run, SpanKind.CLIENT).finally(() => busy.dec());
  };
}

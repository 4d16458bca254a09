/**
 * Relay-style keyset pagination over a prefixed-ULID primary key. Ids sort in creation
 * order, so "after this cursor" is a plain index range (`thread_id = ? and id > ?`) that
 * stays correct while rows are inserted: a new row lands at the ends, never shifts a page.
 */
import { and, asc, desc, gt, lt, type AnyColumn, type SQL } from 'drizzle-orm';
import { BadUserInputError } from '../domain/errors.js';

export type SortOrder = 'asc' | 'desc';

export interface PageArgs {
  first?: number | null | undefined;
  after?: string | null | undefined;
  last?: number | null | undefined;
  before?: string | null | undefined;
  order?: SortOrder | null | undefined;
}

/** A page as a Relay connection has it (the GraphQL connection types serve it as it is). */
export interface Page<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

export const DEFAULT_PAGE_SIZE = 20;

const CURSOR_PREFIX = 'k1:';

export function encodeCursor(id: string): string {
  return Buffer.from(CURSOR_PREFIX + id).toString('base64url');
}

export function decodeCursor(cursor: string, argName: string, idPrefix: string): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = decoded.startsWith(CURSOR_PREFIX) ? decoded.slice(CURSOR_PREFIX.length) : '';
  if (!id.startsWith(`${idPrefix}_`) || !/^[a-z]+_[0-9A-Za-z]{1,64}$/.test(id)) {
    throw new BadUserInputError(`Argument '${argName}' is not a valid cursor.`, { argument: argName });
  }
  return id;
}

export interface KeysetPlan {
  /** The page's range, on the id column given (the table's, or a subquery's). */
  where(id: AnyColumn): SQL | undefined;
  /** The order the range is read in, on the id column given. */
  orderBy(id: AnyColumn): SQL;
  limit: number;
  /** Turns the fetched rows (one more than asked, to see past the page) into a page. */
  page<T extends { id: string }>(rows: T[]): Page<T>;
}

/**
 * Plans the query for one page. `last`/`before` read the range backwards from its end
 * and reverse the rows, so both directions are a single index scan.
 */
export function planKeysetPage(args: PageArgs, idPrefix: string): KeysetPlan {
  if (args.first != null && args.last != null) {
    throw new BadUserInputError("Pass either 'first' or 'last', not both.", { argument: 'last' });
  }
  const order = args.order ?? 'desc';
  const backward = args.last != null;
  const size = (backward ? args.last : args.first) ?? DEFAULT_PAGE_SIZE;
  const after = args.after != null ? decodeCursor(args.after, 'after', idPrefix) : undefined;
  const before = args.before != null ? decodeCursor(args.before, 'before', idPrefix) : undefined;
  const scanAscending = (order === 'asc') !== backward;

  return {
    where(id) {
      // In descending order "after" means smaller ids.
      const afterCond = after === undefined ? undefined : order === 'asc' ? gt(id, after) : lt(id, after);
      const beforeCond = before === undefined ? undefined : order === 'asc' ? lt(id, before) : gt(id, before);
      return and(afterCond, beforeCond);
    },
    orderBy: (id) => (scanAscending ? asc(id) : desc(id)),
    limit: size + 1,
    page(rows) {
      const more = rows.length > size;
      const kept = rows.slice(0, size);
      if (backward) kept.reverse();
      const edges = kept.map((node) => ({ cursor: encodeCursor(node.id), node }));
      return {
        edges,
        pageInfo: {
          // A cursor names a row that exists, so there is something on its far side.
          hasNextPage: backward ? before !== undefined : more,
          hasPreviousPage: backward ? more : after !== undefined,
          startCursor: edges[0]?.cursor ?? null,
          endCursor: edges.at(-1)?.cursor ?? null,
        },
      };
    },
  };
}

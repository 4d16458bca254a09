/**
 * Relay-style keyset pagination over a prefixed-ULID primary key. Ids sort in creation
 * order, so "after this cursor" is a plain index range (`thread_id = ? and id > ?`) that
 * stays correct while rows are inserted: a new row lands at the ends, never shifts a page.
 */
import { and, asc, desc, gt, lt, type AnyColumn, type SQL } from 'drizzle-orm';
import { BadUserInputError } from '../domain/errors.js';
import { LIMITS } from '../domain/input-rules.js';

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
  if (!isIdOf(id, idPrefix)) {
    throw new BadUserInputError(`Argument '${argName}' is not a valid cursor.`, { argument: argName });
  }
  return id;
}

/** Whether `id` is well formed for its kind of object (its prefix, then a ULID or similar). */
function isIdOf(id: string, idPrefix: string): boolean {
  return id.startsWith(`${idPrefix}_`) && /^[a-z]+_[0-9A-Za-z]{1,64}$/.test(id);
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

/**
 * A page asked for as the Assistants API's lists ask (`limit`, `order`, `after`, `before`,
 * object ids as cursors), for the faces that speak it.
 */
export interface ListArgs {
  /** 1 to 100. @default 20 */
  limit?: number | null | undefined;
  /** @default 'desc' (newest first) */
  order?: SortOrder | null | undefined;
  /** An object's id: the page holds the objects that come after it in `order`. */
  after?: string | null | undefined;
  /**
   * An object's id: the page holds the objects that come before it in `order`, the nearest
   * ones (the previous page), still in `order`. With `after` too: the objects between them.
   */
  before?: string | null | undefined;
}

/** A page as the Assistants API's lists answer it: the objects in order, and whether more lie beyond them. */
export interface ListPage<T> {
  rows: T[];
  /** More objects lie past the page, in the direction it was read: after it, or before it for a `before` page. */
  hasMore: boolean;
}

/**
 * Reads a page asked for as a list (ListArgs) through a reader of Relay pages: the object
 * ids become cursors, `before` alone reads backward (`last`), so both faces share one
 * query. A limit out of range or an id of another kind of object is BAD_USER_INPUT.
 */
export async function readList<T extends { id: string }>(
  args: ListArgs,
  idPrefix: string,
  read: (args: PageArgs) => Promise<Page<T>>,
): Promise<ListPage<T>> {
  const limit = args.limit ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.pageSize) {
    throw new BadUserInputError(`Invalid input: limit: must be an integer from 1 to ${LIMITS.pageSize}.`, { fields: ['limit'] });
  }
  const cursor = (id: string | null | undefined, argName: 'after' | 'before') => {
    if (id == null) return undefined;
    if (!isIdOf(id, idPrefix)) {
      throw new BadUserInputError(`Invalid input: ${argName}: '${id}' is not an id of the objects listed (${idPrefix}_...).`, {
        fields: [argName],
      });
    }
    return encodeCursor(id);
  };
  const after = cursor(args.after, 'after');
  const before = cursor(args.before, 'before');
  const backward = before !== undefined && after === undefined;
  const order = args.order ?? 'desc';
  const page = await read(backward ? { last: limit, before, order } : { first: limit, after, before, order });
  return {
    rows: page.edges.map((edge) => edge.node),
    hasMore: backward ? page.pageInfo.hasPreviousPage : page.pageInfo.hasNextPage,
  };
}

/**
 * The API's lists: `limit` (1 to 100, 20 by default), `order` (`asc` or `desc` by
 * creation, `desc` by default), `after` and `before` (an object id: the page that follows
 * it, or the page that precedes it, in the list's order), answered as `{ object: "list",
 * data, first_id, last_id, has_more }`. The use cases read such pages themselves
 * (db/keyset.ts, readList): GraphQL's lists and these share one query and one rule set.
 */
import { z } from 'zod';
import type { ListArgs, ListPage } from '../db/keyset.js';
import { invalidInput } from './errors.js';
import { listObject, type ListObject } from './wire.js';

// The limit's range is the use cases' to check (BAD_USER_INPUT naming `limit`); here only
// its form: a number.
const listQuery = z.object({
  limit: z.coerce.number().optional(),
  order: z.enum(['asc', 'desc']).optional(),
  after: z.string().optional(),
  before: z.string().optional(),
});

/** The page a list request asks for; BAD_USER_INPUT names the parameter at fault. */
export function listArgs(query: URLSearchParams): ListArgs {
  const parsed = listQuery.safeParse({
    limit: query.get('limit') ?? undefined,
    order: query.get('order') ?? undefined,
    after: query.get('after') ?? undefined,
    before: query.get('before') ?? undefined,
  });
  if (!parsed.success) throw invalidInput(parsed.error);
  return parsed.data;
}

/** A page of rows as the API lists them. */
export function pageObject<Row, T extends { id: string }>(page: ListPage<Row>, toObject: (row: Row) => T): ListObject<T> {
  return listObject(page.rows.map(toObject), page.hasMore);
}

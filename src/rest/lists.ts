/**
 * The API's lists: `limit` (1 to 100, 20 by default), `order` (`asc` or `desc` by
 * creation, `desc` by default), `after` and `before` (an object id: the page that follows
 * it, or the page that precedes it, in the list's order), answered as `{ object: "list",
 * data, first_id, last_id, has_more }`. The use cases page by keyset cursors on the id
 * (db/keyset.ts): an id is the cursor of its row.
 */
import { z } from 'zod';
import { encodeCursor, type Page, type PageArgs } from '../db/keyset.js';
import { pageSizeSchema } from '../domain/input-rules.js';
import { invalidInput } from './errors.js';
import { listObject, type ListObject } from './wire.js';

const listQuery = z.object({
  limit: z.coerce.number().pipe(pageSizeSchema).default(20),
  order: z.enum(['asc', 'desc']).default('desc'),
  after: z.string().optional(),
  before: z.string().optional(),
});

/** A list request's page, as the use cases take it. */
export interface ListArgs extends PageArgs {
  /** A page read backwards from `before`: its `has_more` says whether more come before it. */
  backward: boolean;
}

/** The page a list request asks for; BAD_USER_INPUT names the parameter at fault. */
export function listArgs(query: URLSearchParams): ListArgs {
  const parsed = listQuery.safeParse({
    limit: query.get('limit') ?? undefined,
    order: query.get('order') ?? undefined,
    after: query.get('after') ?? undefined,
    before: query.get('before') ?? undefined,
  });
  if (!parsed.success) throw invalidInput(parsed.error);
  const { limit, order, after, before } = parsed.data;
  const cursors = { after: after && encodeCursor(after), before: before && encodeCursor(before) };
  // `before` alone asks for the objects just before it: the range read backwards from it.
  if (before !== undefined && after === undefined) return { last: limit, order, ...cursors, backward: true };
  return { first: limit, order, ...cursors, backward: false };
}

/** A page of rows as the API lists them. */
export function pageObject<Row, T extends { id: string }>(page: Page<Row>, args: ListArgs, toObject: (row: Row) => T): ListObject<T> {
  const more = args.backward ? page.pageInfo.hasPreviousPage : page.pageInfo.hasNextPage;
  return listObject(
    page.edges.map((edge) => toObject(edge.node)),
    more,
  );
}

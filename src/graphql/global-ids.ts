/**
 * Global ids, as the Relay plugin reads and writes them. Runway's ids are global already
 * (a type prefix and a ULID, see domain/ids): a node's global id is its id, unchanged,
 * and the type it names is read from its prefix.
 */
import { isObjectType, type GraphQLSchema } from 'graphql';
import type { IdPrefix } from '../domain/ids.js';

/** The GraphQL type of each prefix that names a node (an API key's is no node). */
const NODE_TYPES = new Map<string, string>(
  Object.entries({ run: 'Run', thread: 'Thread', msg: 'Message', asst: 'Assistant', step: 'RunStep' } satisfies Partial<
    Record<IdPrefix, string>
  >),
);

/** The type of node an id names, or undefined when it names none. */
export function nodeTypeOf(id: string): string | undefined {
  const end = id.indexOf('_');
  return end > 0 ? NODE_TYPES.get(id.slice(0, end)) : undefined;
}

export function encodeGlobalID(_typename: string, id: string | number | bigint): string {
  return String(id);
}

/** The node field asks only for ids {@link nodeTypeOf} knows (others read null), so a typename is always found. */
export function decodeGlobalID(globalID: string): { typename: string; id: string } {
  return { typename: nodeTypeOf(globalID) ?? '', id: globalID };
}

/** Rows in the order of the ids asked for, null where none was found: what a node loader answers. */
export function inOrderOf<T extends { id: string }>(ids: readonly string[], rows: readonly T[]): (T | null)[] {
  const byId = new Map(rows.map((row) => [row.id, row]));
  return ids.map((id) => byId.get(id) ?? null);
}

/**
 * The plugin resolves a node's `id` through its global id encoding, in an async resolver:
 * a promise for every object. With ids that are global already the encoding changes
 * nothing, so the field reads the row's `id` as any plain field does (graphql-js's default
 * resolver), and a page of runs costs what it did before runs were nodes.
 */
export function withPlainNodeIds(schema: GraphQLSchema): GraphQLSchema {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || !type.getInterfaces().some((i) => i.name === 'Node')) continue;
    const id = type.getFields()['id'];
    if (id) id.resolve = undefined;
  }
  return schema;
}

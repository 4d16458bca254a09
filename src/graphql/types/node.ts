/**
 * Query.node and Query.nodes: any object refetched by its id alone (Relay's global object
 * identification). Each type loads its nodes confined to the caller's project, one
 * statement per type asked for: another project's object reads null, as one that does not
 * exist, and so does an id that names no node.
 */
import { builder } from '../builder.js';
import { nodeTypeOf } from '../global-ids.js';
import { LIMITS } from '../../domain/input-rules.js';

const named = (id: string | number) => (nodeTypeOf(String(id)) ? String(id) : null);

builder.queryFields((t) => ({
  node: t.node({
    description: 'The object with this id, or null when your project has none.',
    args: { id: t.arg.id({ required: true }) },
    id: (_, { id }) => named(id),
  }),
  nodes: t.nodeList({
    description: `The objects with these ids, in their order: null for each your project does not have. At most ${LIMITS.pageSize} ids.`,
    args: {
      ids: t.arg.idList({
        required: true,
        validate: { maxLength: [LIMITS.pageSize, { message: `at most ${LIMITS.pageSize} ids` }] },
      }),
    },
    ids: (_, { ids }) => ids.map(named),
  }),
}));

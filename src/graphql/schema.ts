/** The schema: the type files register themselves on the builder when imported. */
import { printSchema, type GraphQLSchema } from 'graphql';
import { builder } from './builder.js';
import { withPlainNodeIds } from './global-ids.js';
import { withStorableText } from './stored-text.js';
import './types/common.js';
import './types/assistant.js';
import './types/message.js';
import './types/thread.js';
import './types/run.js';
import './types/run-step.js';
import './types/run-status-event.js';
import './types/run-events.js';
import './types/node.js';

export const schema: GraphQLSchema = withPlainNodeIds(withStorableText(builder.toSchema()));

/** The SDL committed in schema/schema.graphql, in the order the code defines it. */
export function printRunwaySchema(): string {
  return printSchema(schema) + '\n';
}

/**
 * A subscription's events as JSON without running GraphQL per event. For an operation
 * that selects only RunStatusEvent's scalar fields (the common `{ runId version status }`)
 * the result of each event is a fixed shape: the projection writes the JSON graphql-js
 * would produce for it, byte for byte (a spec holds it to `execute`), so the websocket
 * can send an event with one string concatenation instead of an execution, three async
 * iterator layers and a promise per write.
 *
 * Anything else (fragments, directives, the `run` field, another root field) gets no
 * projection and is executed per event as GraphQL does.
 */
import {
  getNamedType,
  getOperationAST,
  isLeafType,
  Kind,
  type DocumentNode,
  type GraphQLLeafType,
  type GraphQLObjectType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import type { RunStatusEvent } from '../domain/run.js';
import { EVENT_FIELDS } from './types/run-status-event.js';

/** The `{"data":...}` JSON of one event's result. */
export type EventProjection = (event: RunStatusEvent) => string;

const EVENT_ROOT_FIELDS = new Set(['runStatusChanged', 'threadRunsChanged']);
const cache = new WeakMap<DocumentNode, Map<string | null, EventProjection | null>>();

/**
 * The projection of the operation's result, or undefined when the operation is not a
 * plain selection of event fields. Memoized per parsed document (yoga's parser cache
 * hands the same document to every subscriber of the same query text).
 */
export function eventProjection(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
): EventProjection | undefined {
  let byName = cache.get(document);
  if (!byName) cache.set(document, (byName = new Map()));
  const name = operationName ?? null;
  if (!byName.has(name)) byName.set(name, compile(schema, document, name) ?? null);
  return byName.get(name) ?? undefined;
}

function compile(schema: GraphQLSchema, document: DocumentNode, operationName: string | null): EventProjection | undefined {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== 'subscription' || operation.directives?.length) return undefined;
  const roots = operation.selectionSet.selections;
  const root = roots[0];
  if (roots.length !== 1 || root?.kind !== Kind.FIELD || root.directives?.length) return undefined;
  if (!EVENT_ROOT_FIELDS.has(root.name.value) || !root.selectionSet) return undefined;
  const eventType = schema.getType('RunStatusEvent') as GraphQLObjectType | undefined;
  if (!eventType) return undefined;
  const writers = fieldWriters(eventType, root.selectionSet);
  if (!writers) return undefined;

  const head = `{"data":{${JSON.stringify((root.alias ?? root.name).value)}:{`;
  return (event) => {
    let json = head;
    for (let i = 0; i < writers.length; i++) json += (i ? ',' : '') + writers[i]!(event);
    return json + '}}}';
  };
}

/** One writer per response key, in the order graphql-js collects them; undefined if a selection is not a plain event field. */
function fieldWriters(type: GraphQLObjectType, selectionSet: SelectionSetNode): Array<(e: RunStatusEvent) => string> | undefined {
  const fields = type.getFields();
  const writers = new Map<string, (e: RunStatusEvent) => string>();
  for (const selection of selectionSet.selections) {
    if (selection.kind !== Kind.FIELD || selection.directives?.length || selection.arguments?.length || selection.selectionSet) {
      return undefined;
    }
    const key = (selection.alias ?? selection.name).value;
    if (writers.has(key)) continue; // the same field again (validation allows nothing else)
    const name = selection.name.value;
    const prefix = `${JSON.stringify(key)}:`;
    if (name === '__typename') {
      const value = prefix + JSON.stringify(type.name);
      writers.set(key, () => value);
      continue;
    }
    const read = EVENT_FIELDS[name as keyof typeof EVENT_FIELDS];
    const leaf = fields[name] && getNamedType(fields[name].type);
    if (!read || !isLeafType(leaf)) return undefined;
    const serialize = (leaf as GraphQLLeafType).serialize.bind(leaf);
    writers.set(key, (e) => {
      const value = read(e);
      return prefix + (value == null ? 'null' : JSON.stringify(serialize(value)));
    });
  }
  return [...writers.values()];
}

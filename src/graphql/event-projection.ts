/**
 * A subscription's events as JSON without running GraphQL per event. For an operation
 * that selects only RunStatusEvent's scalar fields (the common `{ runId version status }`)
 * the result of each event is a fixed shape: the projection writes the JSON graphql-js
 * would produce for it, byte for byte (a spec holds it to `execute`), so the websocket
 * can send an event with one string concatenation instead of an execution, three async
 * iterator layers and a promise per write.
 *
 * So does `run { id status version }` (any of the Run fields an event carries: the run
 * as the event left it). Anything else (fragments, directives, other fields of `run`,
 * another root field) gets no projection and is executed per event as GraphQL does.
 */
import {
  execute,
  getNamedType,
  GraphQLError,
  getOperationAST,
  isLeafType,
  Kind,
  type DocumentNode,
  type GraphQLLeafType,
  type GraphQLObjectType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { RunStatusEvent } from '../domain/run.js';
import type { Delivery } from '../realtime/run-streams.js';
import type { GraphQLContext } from './context.js';
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
  const writers = fieldWriters(eventType, root.selectionSet, EVENT_FIELDS, schema);
  if (!writers) return undefined;

  const head = `{"data":{${JSON.stringify((root.alias ?? root.name).value)}:{`;
  return (event) => {
    let json = head;
    let separator = '';
    for (const write of writers) {
      json += separator + write(event);
      separator = ',';
    }
    return json + '}}}';
  };
}

type Read = (e: RunStatusEvent) => unknown;

/** The Run fields an event carries (its `run` selected with only these is projected too). */
const RUN_READS: Record<string, Read> = {
  id: (e) => e.runId,
  threadId: (e) => e.threadId,
  status: (e) => e.status,
  version: (e) => e.version,
  object: () => 'thread.run',
};

/** Fields of a type whose value is an object the event describes: the type's reads there. */
const NESTED: Record<string, { typeName: string; reads: Record<string, Read> }> = { run: { typeName: 'Run', reads: RUN_READS } };

/** One writer per response key, in the order graphql-js collects them; undefined if a selection is not a plain event field. */
function fieldWriters(
  type: GraphQLObjectType,
  selectionSet: SelectionSetNode,
  reads: Record<string, Read> = EVENT_FIELDS,
  schema?: GraphQLSchema,
): Array<(e: RunStatusEvent) => string> | undefined {
  const fields = type.getFields();
  const writers = new Map<string, (e: RunStatusEvent) => string>();
  for (const selection of selectionSet.selections) {
    if (selection.kind !== Kind.FIELD || selection.directives?.length || selection.arguments?.length) return undefined;
    const key = (selection.alias ?? selection.name).value;
    if (writers.has(key)) continue; // the same field again (validation allows nothing else)
    const name = selection.name.value;
    const prefix = `${JSON.stringify(key)}:`;
    if (name === '__typename') {
      const value = prefix + JSON.stringify(type.name);
      writers.set(key, () => value);
      continue;
    }
    if (selection.selectionSet) {
      const nested = reads === EVENT_FIELDS ? NESTED[name] : undefined;
      const nestedType = nested && schema?.getType(nested.typeName);
      if (!nested || !nestedType || !('getFields' in nestedType)) return undefined;
      const inner = fieldWriters(nestedType as GraphQLObjectType, selection.selectionSet, nested.reads, schema);
      if (!inner) return undefined;
      writers.set(key, (e) => `${prefix}{${inner.map((write) => write(e)).join(',')}}`);
      continue;
    }
    const read = reads[name];
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

/**
 * For a subscription whose events go straight to the socket, the results its consumer
 * (graphql-ws) reads are only the end: done, or the lagged delivery. The executor's
 * subscribe still creates the stream (so argument coercion, validation and resolver
 * errors are its own), but its per-event mapping layers, which such a subscription never
 * uses, are dropped for one small iterator over the stream itself (npm run bench:heap:
 * 17.7 -> 15.65 KB per idle subscriber).
 */
export function useDirectSubscriptions(): Plugin {
  return {
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      const direct = (args.contextValue as Partial<GraphQLContext>).direct;
      if (!direct) return;
      setSubscribeFn(async (a) => {
        const result = await subscribeFn(a);
        const stream = direct.stream;
        if (!stream || !(Symbol.asyncIterator in (result as object))) return result;
        // The executor's iterator over the stream is dropped unread: nothing of it runs.
        return new StreamEnd(stream, a as Parameters<typeof execute>[0]);
      });
    },
  };
}

/** What graphql-ws reads of a directly delivered subscription: its end. */
class StreamEnd implements AsyncIterableIterator<unknown> {
  constructor(
    private readonly stream: AsyncIterableIterator<Delivery>,
    private readonly args: Parameters<typeof execute>[0],
  ) {}

  async next(): Promise<IteratorResult<unknown>> {
    let result: IteratorResult<Delivery>;
    try {
      result = await this.stream.next();
    } catch (error) {
      // As the executor reports a failing event stream.
      const e = error instanceof Error ? error : new Error(String(error));
      throw new GraphQLError(e.message, { originalError: e });
    }
    if (result.done) return result;
    // The lagged delivery: executed as any event is, its resolver turns it into the error.
    return { value: await execute({ ...this.args, rootValue: result.value }), done: false };
  }

  return(): Promise<IteratorResult<unknown>> {
    return this.stream.return ? this.stream.return() : Promise.resolve({ done: true, value: undefined });
  }

  throw(error?: unknown): Promise<IteratorResult<unknown>> {
    return this.stream.throw ? this.stream.throw(error) : Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

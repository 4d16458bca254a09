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
 *
 * runEvents and threadEvents deliver four types of RunEvent: their operations get a
 * projection per type, of the fields graphql-js collects for that type (inline fragments
 * and named fragments included, directives not), when those are fields the delivery
 * carries (a delta's text, a message event's kind, a status event's, `run` as above). A
 * type whose selection needs more (`message { ... }`, `step { ... }`) has none: its
 * deliveries are executed, in order with the written ones (see run-streams.ts, guarded).
 */
import {
  execute,
  getNamedType,
  GraphQLError,
  getOperationAST,
  isAbstractType,
  isLeafType,
  isObjectType,
  Kind,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLLeafType,
  type GraphQLObjectType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { RunStatusEvent } from '../domain/run.js';
import type { ContentDelivery } from '../realtime/content-streams.js';
import type { GraphQLContext } from './context.js';
import { eventTypeOf, RUN_EVENT_FIELDS, type DeltaDelivery, type RunEventTypeName } from './types/run-event.js';
import { MESSAGE_DELTA_FIELDS, MESSAGE_EVENT_FIELDS, type MessageDelivery } from './types/run-events.js';
import { EVENT_FIELDS } from './types/run-status-event.js';

/** The `{"data":...}` JSON of one event's result. */
export type EventProjection = (event: RunStatusEvent) => string;

/** The `{"data":...}` JSON of a content delivery's result, for the deliveries it `writes`. */
export type ContentProjection = ((delivery: ContentDelivery) => string) & { writes(delivery: ContentDelivery): boolean };

const EVENT_ROOT_FIELDS = new Set(['runStatusChanged', 'threadRunsChanged']);
const CONTENT_ROOT_FIELDS = new Set(['runEvents', 'threadEvents']);

/** Memoized per parsed document (yoga's parser cache hands the same document to every subscriber of the same query text) and operation. */
function memoized<P>(compile: (schema: GraphQLSchema, document: DocumentNode, operationName: string | null) => P | undefined) {
  const cache = new WeakMap<DocumentNode, Map<string | null, P | null>>();
  return (schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined): P | undefined => {
    let byName = cache.get(document);
    if (!byName) cache.set(document, (byName = new Map()));
    const name = operationName ?? null;
    if (!byName.has(name)) byName.set(name, compile(schema, document, name) ?? null);
    return byName.get(name) ?? undefined;
  };
}

/**
 * The projection of a runStatusChanged or threadRunsChanged operation's result, or
 * undefined when the operation is not a plain selection of event fields.
 */
export const eventProjection = memoized<EventProjection>((schema, document, operationName) => {
  const root = subscriptionRoot(document, operationName, EVENT_ROOT_FIELDS);
  const eventType = schema.getType('RunStatusEvent');
  if (!root?.selectionSet || !isObjectType(eventType)) return undefined;
  // Plain fields only (no fragments): this family's operations are the simple ones.
  const write = objectWriter(schema, undefined, eventType, [root.selectionSet], STATUS_EVENT);
  if (!write) return undefined;
  const head = `{"data":{${JSON.stringify((root.alias ?? root.name).value)}:`;
  return (event) => head + write(event) + '}}';
});

/**
 * The projection of a runEvents or threadEvents operation's result, per RunEvent type;
 * undefined when no type has one (the operation is executed per event).
 */
export const contentProjection = memoized<ContentProjection>((schema, document, operationName) => {
  const root = subscriptionRoot(document, operationName, CONTENT_ROOT_FIELDS);
  if (!root?.selectionSet) return undefined;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const head = `{"data":{${JSON.stringify((root.alias ?? root.name).value)}:`;
  const selectionSet = root.selectionSet;
  const writers: Partial<Record<RunEventTypeName, (d: ContentDelivery) => string>> = {};
  for (const [typeName, projected] of Object.entries(CONTENT_TYPES) as [RunEventTypeName, (typeof CONTENT_TYPES)[RunEventTypeName]][]) {
    const type = schema.getType(typeName);
    if (!isObjectType(type)) continue;
    const write = projected((shape) => objectWriter(schema, fragments, type, [selectionSet], shape));
    if (write) writers[typeName] = (d) => head + write(d) + '}}';
  }
  if (Object.keys(writers).length === 0) return undefined;
  const project = (d: ContentDelivery) => (writers[eventTypeOf(d)] as (d: ContentDelivery) => string)(d);
  return Object.assign(project, { writes: (d: ContentDelivery) => writers[eventTypeOf(d)] !== undefined });
});

/** The operation's single root field, if it is a subscription to one of `names` with no directive anywhere at its root. */
function subscriptionRoot(document: DocumentNode, operationName: string | null, names: ReadonlySet<string>): FieldNode | undefined {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== 'subscription' || operation.directives?.length) return undefined;
  const roots = operation.selectionSet.selections;
  const root = roots[0];
  if (roots.length !== 1 || root?.kind !== Kind.FIELD || root.directives?.length) return undefined;
  return names.has(root.name.value) ? root : undefined;
}

type Read<S> = (source: S) => unknown;

/** What a source (an event, a delivery) can answer of a type: its leaf fields, and object fields it describes. */
interface Shape<S> {
  reads: Readonly<Record<string, Read<S>>>;
  nested?: Readonly<Record<string, { typeName: string; shape: Shape<S> }>>;
}

/** The Run fields an event carries (its `run` selected with only these is projected too). */
const RUN_OF_EVENT: Shape<RunStatusEvent> = {
  reads: {
    id: (e) => e.runId,
    threadId: (e) => e.threadId,
    status: (e) => e.status,
    version: (e) => e.version,
    object: () => 'thread.run',
  },
};

const STATUS_EVENT: Shape<RunStatusEvent> = { reads: EVENT_FIELDS, nested: { run: { typeName: 'Run', shape: RUN_OF_EVENT } } };

/** Compiles a type's selection against a shape (objectWriter, for one operation). */
type Compile = <S>(shape: Shape<S>) => ((source: S) => string) | undefined;

/** A RunEvent type's fields, read from `source(d)` of each delivery of that type (eventTypeOf picks the type). */
function projectedType<S>(source: (d: ContentDelivery) => S, shape: Shape<S>) {
  return (compile: Compile): ((d: ContentDelivery) => string) | undefined => {
    const write = compile(shape);
    return write && ((d) => write(source(d)));
  };
}

const CONTENT_TYPES: Record<RunEventTypeName, ReturnType<typeof projectedType>> = {
  RunStatusEvent: projectedType((d) => (d as { event: RunStatusEvent }).event, STATUS_EVENT),
  MessageEvent: projectedType((d) => d as MessageDelivery, { reads: MESSAGE_EVENT_FIELDS }),
  MessageDeltaEvent: projectedType((d) => d as DeltaDelivery, { reads: MESSAGE_DELTA_FIELDS }),
  RunStepEvent: projectedType((d) => d, { reads: RUN_EVENT_FIELDS }),
};

/**
 * The JSON object graphql-js completes for `type` from these selection sets, written from
 * the source: one writer per response key, in the order graphql-js collects them;
 * undefined if a selected field is not one the shape reads (or a directive is used, or,
 * without `fragments`, a fragment).
 */
function objectWriter<S>(
  schema: GraphQLSchema,
  fragments: ReadonlyMap<string, FragmentDefinitionNode> | undefined,
  type: GraphQLObjectType,
  selectionSets: readonly SelectionSetNode[],
  shape: Shape<S>,
): ((source: S) => string) | undefined {
  const collected = new Map<string, FieldNode[]>();
  const visited = new Set<string>();
  for (const set of selectionSets) if (!collectFields(schema, fragments, type, set, collected, visited)) return undefined;
  const fields = type.getFields();
  const writers: Array<(source: S) => string> = [];
  for (const [key, nodes] of collected) {
    const name = (nodes[0] as FieldNode).name.value;
    if (nodes.some((node) => node.arguments?.length)) return undefined;
    const prefix = `${JSON.stringify(key)}:`;
    if (name === '__typename') {
      const value = prefix + JSON.stringify(type.name);
      writers.push(() => value);
      continue;
    }
    const field = fields[name];
    const named = field && getNamedType(field.type);
    if (isLeafType(named)) {
      const read = shape.reads[name];
      if (!read) return undefined;
      const serialize = (named as GraphQLLeafType).serialize.bind(named);
      // The subscribers of one run are written one after another with the same values (a
      // delta's text and index): the last value's JSON is kept for the next.
      let last: unknown;
      let lastJson = '';
      writers.push((source) => {
        const value = read(source);
        if (value === last && lastJson) return lastJson;
        last = value;
        return (lastJson = prefix + (value == null ? 'null' : JSON.stringify(serialize(value))));
      });
      continue;
    }
    const nested = shape.nested?.[name];
    if (!nested || !isObjectType(named) || named.name !== nested.typeName) return undefined;
    // Plain fields only, as RunStatusEvent.run serves from the event (fromEventAlone).
    const inner = objectWriter(
      schema,
      undefined,
      named,
      nodes.map((node) => node.selectionSet as SelectionSetNode),
      nested.shape,
    );
    if (!inner) return undefined;
    writers.push((source) => prefix + inner(source));
  }
  return (source) => {
    let json = '{';
    for (let i = 0; i < writers.length; i++) json += (i ? ',' : '') + (writers[i] as (source: S) => string)(source);
    return json + '}';
  };
}

/**
 * graphql-js's field collection for an object of `type` (its collectFields): response
 * keys in first-seen order, each with all its field nodes; fragments whose type condition
 * the type meets, each named one once. False on a directive (@skip and @include depend on
 * the variables, which a projection shared by every subscriber of the document cannot),
 * or on a fragment when `fragments` is not given.
 */
function collectFields(
  schema: GraphQLSchema,
  fragments: ReadonlyMap<string, FragmentDefinitionNode> | undefined,
  type: GraphQLObjectType,
  selectionSet: SelectionSetNode,
  into: Map<string, FieldNode[]>,
  visited: Set<string>,
): boolean {
  for (const selection of selectionSet.selections) {
    if (selection.directives?.length) return false;
    if (selection.kind === Kind.FIELD) {
      const key = (selection.alias ?? selection.name).value;
      const nodes = into.get(key);
      if (nodes) nodes.push(selection);
      else into.set(key, [selection]);
      continue;
    }
    if (!fragments) return false;
    let fragment: { typeCondition?: FragmentDefinitionNode['typeCondition'] | undefined; selectionSet: SelectionSetNode };
    if (selection.kind === Kind.INLINE_FRAGMENT) fragment = selection;
    else {
      const name = selection.name.value;
      if (visited.has(name)) continue;
      visited.add(name);
      const definition = fragments.get(name);
      if (!definition) continue;
      if (definition.directives?.length) return false;
      fragment = definition;
    }
    if (fragment.typeCondition) {
      const condition = schema.getType(fragment.typeCondition.name.value);
      if (condition !== type && !(isAbstractType(condition) && schema.isSubType(condition, type))) continue;
    }
    if (!collectFields(schema, fragments, type, fragment.selectionSet, into, visited)) return false;
  }
  return true;
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

/**
 * What graphql-ws reads of a directly delivered subscription: its end, and the deliveries
 * the sink does not write, executed here as the executor executes each event (and sent by
 * graphql-ws through the same result hooks: error masking, the answer budget).
 */
class StreamEnd implements AsyncIterableIterator<unknown> {
  constructor(
    private readonly stream: AsyncIterableIterator<unknown>,
    private readonly args: Parameters<typeof execute>[0],
  ) {}

  async next(): Promise<IteratorResult<unknown>> {
    let result: IteratorResult<unknown>;
    try {
      result = await this.stream.next();
    } catch (error) {
      // As the executor reports a failing event stream.
      const e = error instanceof Error ? error : new Error(String(error));
      throw new GraphQLError(e.message, { originalError: e });
    }
    if (result.done) return result;
    // A delivery the sink does not write, or the lagged one (its resolver turns it into
    // the error): executed as any event is.
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

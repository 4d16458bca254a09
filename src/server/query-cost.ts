/**
 * The cost limit, counted with the request's variables. graphql-armor's cost rule (2.4.3,
 * its latest) runs at validation, where there are no variables: it counts `first: 100`
 * written in the query but not `first: $n`, so moving a page size into a variable escaped
 * the limit. This is armor's model, unchanged (2 per object, 1 per leaf, children times
 * 1.5, an object's cost times its `first`/`last`), computed once per document into a
 * function of the variables: only the page sizes that come from variables are read per
 * request, and a document without them costs a constant.
 *
 * A page size is counted up to the largest page the schema serves (LIMITS.pageSize): a
 * larger one is refused by the argument's own validation, with BAD_USER_INPUT naming it,
 * whether it was written in the query or passed in a variable.
 */
import {
  getOperationAST,
  type GraphQLError,
  Kind,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { codedError, httpStatus } from '../graphql/errors.js';
import { LIMITS } from '../domain/input-rules.js';

type Variables = Readonly<Record<string, unknown>> | null | undefined;
/** A fragment's cost is the same wherever it is spread: worked out once per request. */
type Memo = Map<string, number>;
/** A cost: a constant, or a function of the request's variables. */
type Cost = number | ((variables: Variables, memo: Memo) => number);

const OBJECT_COST = 2;
const LEAF_COST = 1;
const DEPTH_FACTOR = 1.5;

const valueOf = (cost: Cost, variables: Variables, memo: Memo) => (typeof cost === 'number' ? cost : cost(variables, memo));

/**
 * What a field's objects are multiplied by: its page size (`first`/`last`), a literal or a
 * variable (with its default), or the number of `ids` it is given (`nodes(ids:)`).
 */
function multiplier(field: FieldNode, defaults: ReadonlyMap<string, number | undefined>): Cost {
  let size: Cost = 1;
  for (const argument of field.arguments ?? []) {
    if (argument.name.value === 'ids') return listLength(argument.value);
    if (argument.name.value !== 'first' && argument.name.value !== 'last') continue;
    const value: ValueNode = argument.value;
    if (value.kind === Kind.INT) size = pageSize(Number.parseInt(value.value, 10));
    else if (value.kind === Kind.VARIABLE) {
      const name = value.name.value;
      const fallback = pageSize(defaults.get(name));
      size = (variables) => {
        const given = variables?.[name];
        // Absent: the variable's default. null, or anything but an integer, is no page
        // size (and coercion refuses what is not an Int).
        return given === undefined ? fallback : pageSize(given);
      };
    }
    break; // as armor: the first of first/last counts (both at once is refused anyway)
  }
  return size;
}

/** A list argument's length, literal or from a variable (a lone value coerces to a list of one). */
function listLength(value: ValueNode): Cost {
  if (value.kind === Kind.LIST) return pageSize(value.values.length);
  if (value.kind !== Kind.VARIABLE) return 1;
  const name = value.name.value;
  return (variables) => {
    const given = variables?.[name];
    return Array.isArray(given) ? pageSize(given.length) : 1;
  };
}

function pageSize(value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) ? Math.min(Math.max(value, 1), LIMITS.pageSize) : 1;
}

/** The cost of one operation of the document, as a function of its variables. */
export function compileCost(document: DocumentNode, operation: OperationDefinitionNode): (variables: Variables) => number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const defaults = new Map<string, number | undefined>();
  for (const definition of operation.variableDefinitions ?? []) {
    const value = definition.defaultValue;
    defaults.set(definition.variable.name.value, value?.kind === Kind.INT ? Number.parseInt(value.value, 10) : undefined);
  }
  const compiledFragments = new Map<string, Cost>();
  // Whether some fragment's cost depends on the variables (and is worth remembering).
  let remembers = false;

  /** Σ 1.5 × child (or Σ child at the operation's root). */
  function children(selectionSet: SelectionSetNode, factor: number): Cost {
    let constant = 0;
    const variable: Exclude<Cost, number>[] = [];
    for (const selection of selectionSet.selections) {
      const cost = selectionCost(selection);
      if (typeof cost === 'number') constant += factor * cost;
      else variable.push(cost);
    }
    if (!variable.length) return constant;
    return (variables, memo) => {
      let total = constant;
      for (const cost of variable) total += factor * cost(variables, memo);
      return total;
    };
  }

  /** (2 + Σ 1.5 × child) × page size. */
  function objectCost(selectionSet: SelectionSetNode, size: Cost): Cost {
    const inner = children(selectionSet, DEPTH_FACTOR);
    if (typeof inner === 'number' && typeof size === 'number') return (OBJECT_COST + inner) * size;
    return (variables, memo) => (OBJECT_COST + valueOf(inner, variables, memo)) * valueOf(size, variables, memo);
  }

  function selectionCost(selection: SelectionSetNode['selections'][number]): Cost {
    switch (selection.kind) {
      case Kind.FIELD:
        if (selection.name.value === '__schema') return 0; // introspection is not counted
        return selection.selectionSet ? objectCost(selection.selectionSet, multiplier(selection, defaults)) : LEAF_COST;
      case Kind.INLINE_FRAGMENT:
        return objectCost(selection.selectionSet, 1);
      case Kind.FRAGMENT_SPREAD: {
        const name = selection.name.value;
        let fragment = compiledFragments.get(name);
        if (fragment === undefined) {
          const definition = fragments.get(name);
          // Validation refuses unknown fragments and cycles: a placeholder just in case.
          compiledFragments.set(name, 0);
          fragment = definition ? objectCost(definition.selectionSet, 1) : 0;
          compiledFragments.set(name, fragment);
        }
        if (typeof fragment === 'number') return LEAF_COST + DEPTH_FACTOR * fragment;
        const cost = fragment;
        remembers = true;
        return (variables, memo) => {
          let value = memo.get(name);
          if (value === undefined) memo.set(name, (value = cost(variables, memo)));
          return LEAF_COST + DEPTH_FACTOR * value;
        };
      }
    }
  }

  const cost = children(operation.selectionSet, 1);
  if (typeof cost === 'number') return () => cost;
  // A memo only when a fragment needs one: nothing is allocated per request otherwise.
  const none = new Map<string, number>();
  return remembers ? (variables) => cost(variables, new Map()) : (variables) => cost(variables, none);
}

/**
 * Refuses an operation whose cost, with its variables, is over `maxCost`: BAD_USER_INPUT
 * (the verdict depends on the variables, so it is the input's, not the document's), before
 * anything runs. On every transport: the fast path, yoga's and the websocket all execute
 * and subscribe through the envelop.
 */
export function useCostLimit(maxCost: number): Plugin {
  const costs = new WeakMap<DocumentNode, Map<string | null, (variables: Variables) => number>>();
  function costOf(document: DocumentNode, operationName: string | null | undefined) {
    let byName = costs.get(document);
    if (!byName) costs.set(document, (byName = new Map()));
    const name = operationName ?? null;
    let cost = byName.get(name);
    if (cost === undefined) {
      const operation = getOperationAST(document, name);
      // No such operation: the executor says so; a name the document lacks is not kept.
      if (!operation) return undefined;
      cost = compileCost(document, operation);
      byName.set(name, cost);
    }
    return cost;
  }
  const check = ({
    args,
    setResultAndStopExecution,
  }: {
    args: { document: DocumentNode; operationName?: string | null | undefined; variableValues?: Variables; contextValue: unknown };
    setResultAndStopExecution: (result: { errors: GraphQLError[] }) => void;
  }) => {
    const cost = costOf(args.document, args.operationName);
    if (cost === undefined) return;
    const found = cost(args.variableValues);
    if (found <= maxCost) return;
    setResultAndStopExecution({
      errors: [
        codedError('BAD_USER_INPUT', `Query cost limit of ${maxCost} exceeded, found ${found}: ask for smaller pages or fewer fields.`, {
          cost: found,
          maxCost,
          // yoga answers it as it answers a request it refuses (and does not show this).
          ...((args.contextValue as { transport?: string }).transport === 'http' ? httpStatus('BAD_USER_INPUT', { spec: true }) : {}),
        }),
      ],
    });
  };
  return { onExecute: check, onSubscribe: check };
}

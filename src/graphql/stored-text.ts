/**
 * Text PostgreSQL can keep, from every argument of every field, applied from the schema's
 * own types (so a field added later is covered without a word here):
 *
 * - NUL (U+0000): PostgreSQL keeps none in text or jsonb, and a statement given one fails.
 *   In a String, or a JSONObject's (or Metadata's) keys and values: BAD_USER_INPUT naming the argument. In
 *   an ID: no object has one (ids are made here), so it becomes an id that matches nothing
 *   (NUL -> U+FFFD), and the lookup answers as for any unknown id.
 * - A lone UTF-16 surrogate (valid in JSON, not in UTF-8) in a String or an ID becomes
 *   U+FFFD, as PostgreSQL stores it from postgres.js; PGlite's driver miscounts such a
 *   string's bytes when a non-ASCII character precedes it and the statement fails. (JSON
 *   gets the same through jsonParam, where it is written.)
 *
 * Checked before the resolver (and a subscription's subscribe) runs, on every transport.
 * Only fields with such arguments get the check, a scan of their arguments' strings.
 */
import {
  getNullableType,
  isInputObjectType,
  isListType,
  isObjectType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLFieldResolver,
  type GraphQLInputType,
  type GraphQLSchema,
} from 'graphql';
import { BadUserInputError } from '../domain/errors.js';
import { nulInJson, storableText, wellFormed } from '../domain/text.js';

const NUL = '\u0000';

/** What a scalar's values are held to, by scalar name. */
const SCALAR_RULES: Record<string, 'text' | 'id' | 'json'> = { String: 'text', ID: 'id', JSONObject: 'json', Metadata: 'json' };

type Path = (string | number)[];

class Unstorable extends BadUserInputError {
  constructor(path: Path, json: boolean) {
    const field = path.join('.');
    super(`Invalid input: ${field}: must not contain NUL (U+0000) characters${json ? ', in its keys or values' : ''}.`, {
      fields: [field],
    });
  }
}

/** Whether values of this type hold a string the rule applies to (memoized per type). */
function holdsText(type: GraphQLInputType, seen = new Map<string, boolean>()): boolean {
  const inner = getNullableType(type);
  if (isListType(inner)) return holdsText(inner.ofType, seen);
  if (isScalarType(inner)) return inner.name in SCALAR_RULES;
  if (!isInputObjectType(inner)) return false; // enums
  const known = seen.get(inner.name);
  if (known !== undefined) return known;
  seen.set(inner.name, false); // a type that contains itself holds text if another field does
  const holds = Object.values(inner.getFields()).some((field) => holdsText(field.type, seen));
  seen.set(inner.name, holds);
  return holds;
}

/**
 * The value, checked: the same value when nothing needed changing (the common case
 * allocates nothing), a copy with its ids made unmatchable, or a throw.
 */
function checked(value: unknown, type: GraphQLInputType, path: Path): unknown {
  if (value == null) return value;
  const inner = getNullableType(type);
  if (isListType(inner)) {
    // A single value where a list is expected was coerced to a list already.
    if (!Array.isArray(value)) return value;
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      const item = checked(value[i], inner.ofType, path);
      path.pop();
      if (item !== value[i]) (copy ??= [...value])[i] = item;
    }
    return copy ?? value;
  }
  if (isScalarType(inner)) {
    switch (SCALAR_RULES[inner.name]) {
      case 'text':
        if (typeof value !== 'string') return value;
        if (value.includes(NUL)) throw new Unstorable(path, false);
        return wellFormed(value);
      case 'id':
        if (typeof value !== 'string') return value;
        return storableText(value);
      case 'json':
        if (nulInJson(value)) throw new Unstorable(path, true);
        return value;
      default:
        return value;
    }
  }
  if (!isInputObjectType(inner) || typeof value !== 'object') return value;
  const fields = inner.getFields();
  let copy: Record<string, unknown> | undefined;
  for (const key in value) {
    const field = fields[key];
    if (!field) continue;
    const given = (value as Record<string, unknown>)[key];
    path.push(key);
    const result = checked(given, field.type, path);
    path.pop();
    if (result !== given) (copy ??= { ...(value as Record<string, unknown>) })[key] = result;
  }
  return copy ?? value;
}

function argumentsChecker(args: readonly GraphQLArgument[]) {
  const held = args.filter((arg) => holdsText(arg.type));
  if (!held.length) return undefined;
  return (values: Record<string, unknown>): Record<string, unknown> => {
    let copy: Record<string, unknown> | undefined;
    for (const arg of held) {
      const given = values[arg.name];
      if (given == null) continue;
      const result = checked(given, arg.type, [arg.name]);
      if (result !== given) (copy ??= { ...values })[arg.name] = result;
    }
    return copy ?? values;
  };
}

/** Puts the rule in front of every field that takes such an argument; returns the schema. */
export function withStorableText(schema: GraphQLSchema): GraphQLSchema {
  const subscription = schema.getSubscriptionType();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      const check = argumentsChecker(field.args);
      if (!check) continue;
      // A subscription's arguments are read once, when it starts; its resolve runs per event.
      if (type === subscription && field.subscribe) {
        const subscribe = field.subscribe;
        field.subscribe = (source, args, context, info) => subscribe(source, check(args), context, info);
      } else {
        const resolve: GraphQLFieldResolver<unknown, unknown> | undefined = field.resolve;
        if (!resolve) continue;
        field.resolve = (source, args, context, info) => resolve(source, check(args), context, info);
      }
    }
  }
  return schema;
}

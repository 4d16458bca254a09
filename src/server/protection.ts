/**
 * Limits on what one request may ask, applied as envelop plugins so that they hold on the
 * websocket path too (it runs operations through `yoga.getEnveloped`, where yoga's
 * HTTP-only hooks such as onRequestParse never fire).
 */
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { NoSchemaIntrospectionCustomRule, type GraphQLError, type ValidationContext } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { QueryLimits } from '../config.js';
import { codedError } from '../graphql/errors.js';
import { useCostLimit } from './query-cost.js';

/**
 * graphql-armor either throws a rejection out of validation (which loses it its code, and
 * on the websocket the socket) or drops it; we report it as a validation error instead.
 */
const asValidationError = {
  propagateOnRejection: false,
  onReject: [
    (context: ValidationContext | null, error: GraphQLError) =>
      context?.reportError(codedError('GRAPHQL_VALIDATION_FAILED', error.message.replace(/^Syntax Error: /, ''))),
  ],
};

export function protectionPlugins(limits: QueryLimits, production: boolean): Plugin[] {
  const plugins: Plugin[] = [
    EnvelopArmorPlugin({
      maxDepth: { n: limits.maxDepth, ...asValidationError },
      // Counted at execution instead, where the variables are known (see query-cost.ts).
      costLimit: { enabled: false },
      maxAliases: { n: limits.maxAliases, ...asValidationError },
      // Counted while parsing, before there is a validation context: a parse error.
      maxTokens: { n: limits.maxTokens },
      maxDirectives: { n: limits.maxDirectives, ...asValidationError },
      // "Did you mean ...?" maps the schema for an attacker; keep it for developers.
      blockFieldSuggestion: { enabled: production },
    }) as Plugin,
    useCostLimit(limits.maxCost),
  ];
  if (production) plugins.push(useNoIntrospection());
  plugins.push(useNestingAsSyntaxError());
  return plugins;
}

/**
 * graphql-js parses nested values and selections recursively: past about 2,000 levels
 * (some 4,000 tokens, so only with GRAPHQL_MAX_TOKENS raised that far) it overflows the
 * stack. That is the client's document, not a bug: a syntax error like any other.
 */
function useNestingAsSyntaxError(): Plugin {
  const nestingError = () => codedError('GRAPHQL_PARSE_FAILED', 'Syntax Error: the document nests too deeply.');
  const afterParse = ({ result, replaceParseResult }: { result: unknown; replaceParseResult: (r: GraphQLError) => void }) => {
    if (result instanceof RangeError) replaceParseResult(nestingError());
  };
  return { onParse: () => afterParse };
}

/** Introspection off, on every transport (yoga's plugin keys on the HTTP request). */
function useNoIntrospection(): Plugin {
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}

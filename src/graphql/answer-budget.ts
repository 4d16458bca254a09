/**
 * How large an answer may grow (MAX_RESPONSE_BYTES). What makes an answer large is the
 * text it carries (message text, instructions, tool arguments and outputs, JSON such as
 * tool parameters and metadata): the resolvers of those fields count their values here as
 * they resolve them, and the first that would pass the limit stops the answer. Everything
 * else an answer holds (ids, numbers, statuses) is a few bytes per field, and the cost
 * limit bounds how many fields one operation may ask for.
 *
 * An operation whose answer would pass the limit gets RESPONSE_TOO_LARGE alone (no
 * partial data): the answer is never built whole, and no list is read once the budget is
 * spent. Per operation, and per event of a subscription.
 */
import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ResponseTooLargeError } from '../domain/errors.js';
import type { GraphQLContext } from './context.js';
import { codedError } from './errors.js';

export class AnswerBudget {
  private left: number;

  constructor(private readonly maxBytes: number) {
    this.left = maxBytes;
  }

  get spent(): boolean {
    return this.left < 0;
  }

  /** Takes `bytes` from what is left; throws once the answer would pass the limit. */
  take(bytes: number): void {
    this.left -= bytes;
    if (this.left < 0) throw new ResponseTooLargeError(this.maxBytes);
  }

  /** Throws if the answer already passed the limit: nothing more is worth reading. */
  check(): void {
    if (this.left < 0) throw new ResponseTooLargeError(this.maxBytes);
  }

  reset(): void {
    this.left = this.maxBytes;
  }
}

/** A text field's value, counted in the answer's budget (its UTF-8 bytes). */
export function counted<T extends string | null | undefined>(context: GraphQLContext, text: T): T {
  if (text && context.answer) context.answer.take(Buffer.byteLength(text));
  return text;
}

/** A JSON field's value, counted in the answer's budget (its JSON text's UTF-8 bytes). */
export function countedJson<T>(context: GraphQLContext, value: T): T {
  if (value != null && context.answer) context.answer.take(Buffer.byteLength(JSON.stringify(value)));
  return value;
}

/** For the resolvers that read a list: refuses to read once the answer is too large already. */
export function checkAnswerBudget(context: GraphQLContext): void {
  context.answer?.check();
}

/**
 * Gives every operation (and every event of a subscription) its budget, and answers one
 * that spent it with RESPONSE_TOO_LARGE alone. An envelop plugin: the fast path, yoga's
 * path and the websocket all execute through it. A subscription whose events all go
 * straight to the socket (see event-projection.ts) resolves no field of its events, so it
 * needs none; one whose sink leaves some deliveries to execution has them budgeted here.
 */
export function useAnswerBudget(maxBytes: number): Plugin {
  const tooLarge = (): ExecutionResult => ({
    data: null,
    errors: [codedError('RESPONSE_TOO_LARGE', new ResponseTooLargeError(maxBytes).message, { maxBytes })],
  });
  const budgetOf = (args: { contextValue: unknown }) => (args.contextValue as GraphQLContext).answer;
  // The same hooks for every operation: nothing is allocated per request but the budget.
  const afterExecute = {
    onExecuteDone({ args, setResult }: { args: { contextValue: unknown }; setResult: (result: ExecutionResult) => void }) {
      if (budgetOf(args)?.spent) setResult(tooLarge());
    },
  };
  const perEvent = {
    onNext({ args, setResult }: { args: { contextValue: unknown }; setResult: (result: ExecutionResult) => void }) {
      const budget = budgetOf(args);
      if (budget?.spent) setResult(tooLarge());
      budget?.reset();
    },
  };
  const afterSubscribe = {
    onSubscribeResult({ result }: { result: unknown }) {
      // A stream of events: each is its own answer. (Anything else is an error already.)
      if (result && typeof result === 'object' && Symbol.asyncIterator in result) return perEvent;
    },
  };
  return {
    onExecute({ args }) {
      (args.contextValue as unknown as GraphQLContext).answer = new AnswerBudget(maxBytes);
      return afterExecute;
    },
    onSubscribe({ args }) {
      const context = args.contextValue as unknown as GraphQLContext;
      if (context.direct && !context.direct.writes) return;
      context.answer = new AnswerBudget(maxBytes);
      return afterSubscribe;
    },
  };
}

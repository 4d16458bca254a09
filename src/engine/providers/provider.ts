/**
 * What the engine asks of a model, whichever serves it. A provider turns a prompt into
 * either an answer or tool calls, and reports failures as {@link ModelError} with the
 * run error code they map to.
 */
import type { ResponseFormat, RunErrorCode, RunUsage, Tool, ToolCall, ToolChoice } from '../../domain/run.js';

export interface PromptMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** For role assistant: the calls it made; for role tool: the call answered. */
  toolCalls?: ToolCall[];
  toolCallId?: string;
  /** For role tool: the function answered, so providers that need the name have it. */
  name?: string;
}

export interface ModelRequest {
  model: string;
  messages: PromptMessage[];
  tools: Tool[];
  toolChoice: ToolChoice | null;
  parallelToolCalls: boolean;
  responseFormat: ResponseFormat | null;
  temperature: number | null;
  topP: number | null;
  maxCompletionTokens: number | null;
}

export type ModelResult =
  { type: 'message'; text: string; usage: RunUsage; truncated: boolean } | { type: 'tool_calls'; toolCalls: ToolCall[]; usage: RunUsage };

export class ModelError extends Error {
  constructor(
    readonly code: RunErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Receives the answer's text as the model produces it (see {@link ModelProvider.complete}).
 * Called synchronously by the provider: it should be quick and must not throw.
 */
export type OnText = (delta: string) => void;

export interface ModelProvider {
  readonly name: string;
  handles(model: string): boolean;
  /**
   * Tokens a prompt may take with this provider's models, when known: AUTO truncation
   * drops the oldest messages to fit it.
   */
  readonly contextWindow?: number | undefined;
  /**
   * Asks the model for its answer to `request`; `signal` aborts the call (it then rejects
   * with the signal's reason).
   *
   * `onText`, if given, is called with each new piece of the answer's text, in order, as
   * soon as the provider has it:
   * - the pieces of a `'message'` result, joined, are its `text` exactly (a length-cut
   *   answer's too: its pieces stop where the text does);
   * - a piece is never empty and never splits a character: no half of a surrogate pair,
   *   no U+FFFD standing for the part of a UTF-8 sequence that has not arrived yet;
   * - a `'tool_calls'` result is announced by no piece of its own: its calls come in the
   *   result. Text a model writes before it decides to call tools (an OpenAI model may say
   *   "Let me look that up" first) is passed on as it comes, and the result is still
   *   `'tool_calls'`, which carries no text: what the caller was shown is not part of it;
   * - if the call fails or is aborted after some pieces, `complete` rejects as it would
   *   have without them ({@link ModelError}, or the signal's reason): the pieces were an
   *   answer in the making, never a finished one.
   */
  complete(request: ModelRequest, signal: AbortSignal, onText?: OnText): Promise<ModelResult>;
}

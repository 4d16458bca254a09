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

export interface ModelProvider {
  readonly name: string;
  handles(model: string): boolean;
  complete(request: ModelRequest, signal: AbortSignal, onText?: (delta: string) => void): Promise<ModelResult>;
}

/**
 * The shapes a run carries besides its status, as stored (JSONB) and as the service
 * layer passes them around. Field names follow the Assistants API's run object, camelCased.
 */
import type { RunStatus } from './run-lifecycle.js';

export type Metadata = Record<string, string>;

export interface FunctionDefinition {
  name: string;
  description?: string | null;
  parameters?: Record<string, unknown> | null;
  strict?: boolean | null;
}

export interface Tool {
  type: 'function';
  function: FunctionDefinition;
}

export type ToolChoice = { mode: 'none' | 'auto' | 'required' } | { function: { name: string } };

export type ResponseFormat =
  | { type: 'auto' | 'text' | 'json_object' }
  | {
      type: 'json_schema';
      jsonSchema: {
        name: string;
        description?: string | null;
        schema?: Record<string, unknown> | null;
        strict?: boolean | null;
      };
    };

export interface TruncationStrategy {
  type: 'auto' | 'last_messages';
  lastMessages?: number | null;
}

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface RequiredAction {
  type: 'submit_tool_outputs';
  submitToolOutputs: { toolCalls: ToolCall[] };
}

export type RunErrorCode = 'server_error' | 'rate_limit_exceeded' | 'invalid_prompt';

export interface RunError {
  code: RunErrorCode;
  message: string;
}

export interface IncompleteDetails {
  reason: 'max_completion_tokens' | 'max_prompt_tokens';
}

export interface RunUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface ToolOutput {
  toolCallId: string;
  output: string;
}

/** One row of `run_events`: a status change, numbered by the run's version. */
export interface RunStatusEvent {
  runId: string;
  threadId: string;
  /** The run's place among its thread's runs: (threadSeq, version) orders a thread's events. */
  threadSeq: number;
  version: number;
  previousStatus: RunStatus | null;
  status: RunStatus;
  /** Unix seconds. */
  at: number;
}

export interface ToolCallWithOutput extends ToolCall {
  function: { name: string; arguments: string; output: string | null };
}

export type StepDetails =
  { type: 'message_creation'; messageCreation: { messageId: string } } | { type: 'tool_calls'; toolCalls: ToolCallWithOutput[] };

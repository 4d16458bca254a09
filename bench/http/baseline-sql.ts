/**
 * Statements the baseline sends as text because they must be exactly what Runway sends:
 * the growth scenario compares them with the statements Runway's RunCommands.list makes
 * (captured through drizzle's logger), so that a change on either side shows up there
 * instead of quietly comparing two different queries.
 */

/** Whether the thread is in the project (the check before listing its runs). */
export const THREAD_IN_PROJECT = `select "id" from "threads" where ("threads"."id" = $1 and "threads"."project_id" = $2)`;

/** A thread's newest runs, every column: $1 thread id, $2 page size + 1. */
export const FIRST_RUNS_DESC =
  `select "id", "project_id", "thread_id", "assistant_id", "created_at", "thread_seq", "status", "previous_status", ` +
  `"version", "required_action", "last_error", "expires_at", "started_at", "cancelled_at", "failed_at", "completed_at", ` +
  `"incomplete_details", "model", "instructions", "additional_instructions", "tools", "metadata", "usage", "temperature", ` +
  `"top_p", "max_prompt_tokens", "max_completion_tokens", "truncation_strategy", "tool_choice", "parallel_tool_calls", ` +
  `"response_format", "worker_id", "lease_token", "lease_expires_at" from "runs" where "runs"."thread_id" = $1 ` +
  `order by "runs"."id" desc limit $2`;

/** runs(threadId, first): the statements, in the order they are sent. */
export const RUNS_PAGE = [THREAD_IN_PROJECT, FIRST_RUNS_DESC] as const;

/**
 * Statements the baseline sends as text because they must be exactly what Runway sends:
 * the growth scenario compares them with the statements Runway's RunCommands.list makes
 * (captured through drizzle's logger), so that a change on either side shows up there
 * instead of quietly comparing two different queries.
 */

/** Every column of a run, in the table's order. */
const RUN_COLUMNS = [
  'id',
  'project_id',
  'thread_id',
  'assistant_id',
  'created_at',
  'thread_seq',
  'status',
  'previous_status',
  'version',
  'required_action',
  'last_error',
  'expires_at',
  'started_at',
  'cancelled_at',
  'failed_at',
  'completed_at',
  'incomplete_details',
  'model',
  'instructions',
  'additional_instructions',
  'tools',
  'metadata',
  'usage',
  'temperature',
  'top_p',
  'max_prompt_tokens',
  'max_completion_tokens',
  'truncation_strategy',
  'tool_choice',
  'parallel_tool_calls',
  'response_format',
  'worker_id',
  'lease_token',
  'lease_expires_at',
  'traceparent',
];
const columns = (table?: string) => RUN_COLUMNS.map((c) => (table ? `"${table}"."${c}"` : `"${c}"`)).join(', ');

/** GET /v1/threads/{t}/runs/{r}: the run in the project ($1 run id, $2 project, $3 = 1); its thread is compared after. */
export const RUN_IN_PROJECT = `select ${columns()} from "runs" where ("runs"."id" = $1 and "runs"."project_id" = $2) limit $3`;

/**
 * GET /v1/threads/{t}/runs?limit=20: the thread's row in the project joined to its newest
 * runs ($1 page size + 1, $2 thread id, $3 project): one row with null columns for a
 * thread without runs, none for a missing thread.
 */
export const FIRST_RUNS_OF_THREAD_DESC =
  `select ${columns('page')} from "threads" left join lateral (select ${columns()} from "runs" ` +
  `where "runs"."thread_id" = "threads"."id" order by "runs"."id" desc limit $1) "page" on true ` +
  `where ("threads"."id" = $2 and "threads"."project_id" = $3) order by "page"."id" desc`;

/** runs(threadId, first): the statements, in the order they are sent (one: the thread joined to its page). */
export const RUNS_PAGE = [FIRST_RUNS_OF_THREAD_DESC] as const;

/** The REST reads' statements, each in the order they are sent when the run or thread exists. */
export const REST_STATEMENTS = {
  'rest-run': [RUN_IN_PROJECT],
  'rest-runs': [FIRST_RUNS_OF_THREAD_DESC],
} as const;

/** The benchmark's operations: the same documents go to Runway and to the baseline. */
export const OPERATIONS = {
  /** run(threadId, runId) by random id, with the fields a run view shows. */
  run: {
    operationName: 'RunById',
    query: `query RunById($threadId: ID!, $runId: ID!) { run(threadId: $threadId, runId: $runId) {
      id object threadId assistantId status createdAt startedAt completedAt model metadata usage { totalTokens } } }`,
  },
  /** runs(threadId, first: 20), with what a list of runs shows. */
  runs: {
    operationName: 'RunsPage',
    query: `query RunsPage($threadId: ID!, $first: Int!) { runs(threadId: $threadId, first: $first) {
      nodes { id status createdAt model } pageInfo { hasNextPage endCursor } } }`,
  },
  /** thread -> 20 runs -> their steps: exposes N+1. */
  nested: {
    operationName: 'ThreadRunsSteps',
    query: `query ThreadRunsSteps($threadId: ID!, $first: Int!) { thread(id: $threadId) {
      id runs(first: $first) { nodes { id status steps { nodes { id type status } } } } } }`,
  },
  /** createRun on a thread without an active run, as a client starting a run does. */
  create: {
    operationName: 'CreateRun',
    query: `mutation CreateRun($threadId: ID!, $assistantId: ID!) {
      createRun(threadId: $threadId, input: { assistantId: $assistantId }) { id status } }`,
  },
} as const;

export type Scenario = keyof typeof OPERATIONS;
export type Read = Exclude<Scenario, 'create'>;
export const READS: readonly Read[] = ['run', 'runs', 'nested'];

/**
 * The same reads on the REST API (OpenAI's Assistants v2 paths, under /v1): a GET each,
 * its path made per request. The baseline routes them by path.
 */
export const REST_READS = {
  /** GET /v1/threads/{thread_id}/runs/{run_id}: a run, as `runs.retrieve` reads it. */
  'rest-run': ({ threadId, runId }: Ids) => `/v1/threads/${threadId}/runs/${runId}`,
  /** GET /v1/threads/{thread_id}/runs?limit=20: the newest page, as `runs.list` reads it. */
  'rest-runs': ({ threadId }: Ids) => `/v1/threads/${threadId}/runs?limit=20`,
} as const;

export type RestRead = keyof typeof REST_READS;
export const REST_READ_NAMES = Object.keys(REST_READS) as RestRead[];
export const isRestRead = (scenario: string): scenario is RestRead => scenario in REST_READS;

/** What one request is about: a thread, and the run (run) or the assistant (create). */
export interface Ids {
  threadId: string;
  runId?: string;
  assistantId?: string;
}

export function body(scenario: Scenario, ids: Ids, first = 20): string {
  const { operationName, query } = OPERATIONS[scenario];
  const { threadId, runId, assistantId } = ids;
  const variables = scenario === 'run' ? { threadId, runId } : scenario === 'create' ? { threadId, assistantId } : { threadId, first };
  return JSON.stringify({ operationName, query, variables });
}

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

/** Building blocks the suites share: an assistant, a thread and a run, through GraphQL. */
import type { TestApp } from './test-app.js';

export const RUN_FIELDS = `id object status version threadId assistantId createdAt expiresAt startedAt
  cancelledAt failedAt completedAt model instructions metadata parallelToolCalls
  requiredAction { type submitToolOutputs { toolCalls { id type function { name arguments } } } }
  lastError { code message } incompleteDetails { reason } usage { promptTokens completionTokens totalTokens }`;

export const WEATHER_TOOL = {
  type: 'FUNCTION',
  function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
};

export async function createAssistant(t: TestApp, input: Record<string, unknown> = {}): Promise<string> {
  const data = await t.ok<{ createAssistant: { id: string } }>(
    'mutation($input: CreateAssistantInput!) { createAssistant(input: $input) { id } }',
    { input: { model: 'scripted', instructions: 'Be brief.', tools: [WEATHER_TOOL], ...input } },
  );
  return data.createAssistant.id;
}

export async function createThread(t: TestApp, content = 'Hello'): Promise<string> {
  const data = await t.ok<{ createThread: { id: string } }>('mutation($input: CreateThreadInput) { createThread(input: $input) { id } }', {
    input: { messages: [{ role: 'USER', content }] },
  });
  return data.createThread.id;
}

export async function createRun(t: TestApp, threadId: string, input: Record<string, unknown>): Promise<any> {
  const data = await t.ok<{ createRun: any }>(
    `mutation($threadId: ID!, $input: CreateRunInput!) { createRun(threadId: $threadId, input: $input) { ${RUN_FIELDS} } }`,
    { threadId, input },
  );
  return data.createRun;
}

export async function newRun(t: TestApp, input: Record<string, unknown> = {}) {
  const assistantId = await createAssistant(t);
  const threadId = await createThread(t);
  const run = await createRun(t, threadId, { assistantId, ...input });
  return { assistantId, threadId, runId: run.id as string, run };
}

/**
 * The endpoints: one entry each, a method and OpenAI's path to a handler that translates
 * the request (bodies.ts, lists.ts), calls a use case and converts what it returns
 * (wire.ts). The rules are the use cases' and the input rules'; nothing here decides what
 * is allowed. An endpoint is added with one entry (`endpoint('DELETE')` for deletes).
 */
import type { z } from 'zod';
import type { AssistantService } from '../assistants/assistant-service.js';
import type { Caller } from '../domain/caller.js';
import { NotFoundError, ThreadHasActiveRunError } from '../domain/errors.js';
import type { RunCommands } from '../runs/index.js';
import type { ThreadService } from '../threads/thread-service.js';
import {
  createAssistantBody,
  createMessageBody,
  createRunBody,
  createThreadAndRunBody,
  createThreadBody,
  modifyAssistantBody,
  modifyMessageBody,
  modifyRunBody,
  modifyThreadBody,
  submitToolOutputsBody,
} from './bodies.js';
import { invalidInput, RestError } from './errors.js';
import { listArgs, pageObject } from './lists.js';
import { streamFromCreation, streamFromSubmission, type StreamServices } from './run-events-sse.js';
import type { Method, PathParams, Route } from './router.js';
import { assistantObject, messageObject, runObject, runStepObject, threadObject } from './wire.js';

/** The use cases the endpoints call, and what streamed runs read (GraphQL's Services has them all). */
export interface RestServices extends StreamServices {
  runs: RunCommands;
  threads: ThreadService;
  assistants: AssistantService;
}

/** What a handler gets of a request. */
export interface RestRequest {
  caller: Caller;
  /** The path's parameters, by the names the pattern gives them. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The JSON body of a POST (`{}` when it has none). */
  body: unknown;
  /** The `Idempotency-Key` header, checked. */
  idempotencyKey: string | undefined;
  services: RestServices;
}

/** Answers with the object the API sends (status 200), or a run's events as they come (`stream: true`). */
export type Handler = (request: RestRequest) => Promise<unknown>;

/** A handler of one pattern: its `params` are those the pattern names. */
type Endpoint<P extends string> = (request: RestRequest & { params: PathParams<P> }) => Promise<unknown>;

// The router gives a handler the parameters its pattern names (router.ts): the cast says no more.
const endpoint =
  (method: Method) =>
  <P extends string>(pattern: P, handler: Endpoint<P>): Route<Handler> => ({ method, pattern, handler: handler as Handler });
const get = endpoint('GET');
const post = endpoint('POST');
const del = endpoint('DELETE');

export const routes: Route<Handler>[] = [
  post('/v1/assistants', async ({ caller, body, idempotencyKey, services }) =>
    assistantObject(await services.assistants.create(caller.projectId, parsed(createAssistantBody, body), idempotencyKey)),
  ),
  get('/v1/assistants', async ({ caller, query, services }) =>
    pageObject(await services.assistants.listAssistants(caller.projectId, listArgs(query)), assistantObject),
  ),
  get('/v1/assistants/{assistant_id}', async ({ caller, params: p, services }) =>
    assistantObject(found(await services.assistants.get(caller.projectId, p.assistant_id), 'assistant', p.assistant_id)),
  ),
  post('/v1/assistants/{assistant_id}', async ({ caller, params: p, body, services }) =>
    assistantObject(await services.assistants.modify(caller.projectId, p.assistant_id, parsed(modifyAssistantBody, body))),
  ),
  del('/v1/assistants/{assistant_id}', async ({ caller, params: p, services }) =>
    services.assistants.delete(caller.projectId, p.assistant_id),
  ),

  post('/v1/threads', async ({ caller, body, idempotencyKey, services }) =>
    threadObject(await services.threads.create(caller.projectId, parsed(createThreadBody, body), idempotencyKey)),
  ),
  get('/v1/threads/{thread_id}', async ({ caller, params: p, services }) =>
    threadObject(found(await services.threads.get(caller.projectId, p.thread_id), 'thread', p.thread_id)),
  ),
  post('/v1/threads/{thread_id}', async ({ caller, params: p, body, services }) =>
    threadObject(await services.threads.modify(caller.projectId, p.thread_id, parsed(modifyThreadBody, body))),
  ),
  del('/v1/threads/{thread_id}', async ({ caller, params: p, services }) => services.threads.delete(caller.projectId, p.thread_id)),

  post('/v1/threads/{thread_id}/messages', async ({ caller, params: p, body, idempotencyKey, services }) => {
    const input = parsed(createMessageBody, body);
    return messageObject(
      await services.threads.createMessage(caller.projectId, p.thread_id, input, idempotencyKey).catch(asAddingMessages),
    );
  }),
  get('/v1/threads/{thread_id}/messages', async ({ caller, params: p, query, services }) => {
    const args = { ...listArgs(query), runId: query.get('run_id') ?? undefined };
    return pageObject(await services.threads.listThreadMessages(caller.projectId, p.thread_id, args), messageObject);
  }),
  get('/v1/threads/{thread_id}/messages/{message_id}', async ({ caller, params: p, services }) =>
    messageObject(found(await services.threads.getThreadMessage(caller.projectId, p.thread_id, p.message_id), 'message', p.message_id)),
  ),
  post('/v1/threads/{thread_id}/messages/{message_id}', async ({ caller, params: p, body, services }) =>
    messageObject(await services.threads.modifyMessage(caller.projectId, p.thread_id, p.message_id, parsed(modifyMessageBody, body))),
  ),
  del('/v1/threads/{thread_id}/messages/{message_id}', async ({ caller, params: p, services }) =>
    services.threads.deleteMessage(caller.projectId, p.thread_id, p.message_id),
  ),

  post('/v1/threads/runs', async ({ caller, body, idempotencyKey, services }) => {
    const { input, stream } = parsed(createThreadAndRunBody, body);
    const run = await services.runs.createThreadAndRun(caller.projectId, input, idempotencyKey);
    return stream ? streamFromCreation(services, caller, run, { thread: true }) : runObject(run);
  }),
  post('/v1/threads/{thread_id}/runs', async ({ caller, params: p, body, idempotencyKey, services }) => {
    const { input, stream } = parsed(createRunBody, body);
    const run = await services.runs.create(caller.projectId, p.thread_id, input, idempotencyKey);
    return stream ? streamFromCreation(services, caller, run) : runObject(run);
  }),
  get('/v1/threads/{thread_id}/runs', async ({ caller, params: p, query, services }) =>
    pageObject(await services.runs.listRuns(caller.projectId, p.thread_id, listArgs(query)), runObject),
  ),
  get('/v1/threads/{thread_id}/runs/{run_id}', async ({ caller, params: p, services }) =>
    runObject((await services.runs.get(caller.projectId, p.thread_id, p.run_id)) ?? (await runMissing(services, caller, p))),
  ),
  post('/v1/threads/{thread_id}/runs/{run_id}', async ({ caller, params: p, body, services }) => {
    const { metadata } = parsed(modifyRunBody, body);
    if (metadata === undefined)
      return runObject((await services.runs.get(caller.projectId, p.thread_id, p.run_id)) ?? (await runMissing(services, caller, p)));
    return runObject(await services.runs.modify(caller.projectId, p.thread_id, p.run_id, metadata ?? {}));
  }),
  post('/v1/threads/{thread_id}/runs/{run_id}/cancel', async ({ caller, params: p, services }) =>
    runObject(await services.runs.cancel(caller.projectId, p.thread_id, p.run_id)),
  ),
  post('/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs', async ({ caller, params: p, body, idempotencyKey, services }) => {
    const { outputs, stream } = parsed(submitToolOutputsBody, body);
    const run = await services.runs.submitToolOutputs(caller.projectId, p.thread_id, p.run_id, outputs, idempotencyKey);
    return stream ? streamFromSubmission(services, caller, run) : runObject(run);
  }),

  get('/v1/threads/{thread_id}/runs/{run_id}/steps', async ({ caller, params: p, query, services }) =>
    pageObject(await services.runs.listSteps(caller.projectId, p.thread_id, p.run_id, listArgs(query)), runStepObject),
  ),
  get('/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}', async ({ caller, params: p, services }) =>
    runStepObject(found(await services.runs.getStep(caller.projectId, p.thread_id, p.run_id, p.step_id), 'step', p.step_id)),
  ),
];

/** The body as the schema maps it, or BAD_USER_INPUT naming the field at fault. */
function parsed<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body);
  if (!result.success) throw invalidInput(result.error);
  return result.data;
}

function found<T>(row: T | undefined, kind: ConstructorParameters<typeof NotFoundError>[0], id: string): T {
  if (row === undefined) throw new NotFoundError(kind, id);
  return row;
}

/**
 * Why a run was not found: NOT_FOUND for its thread when that is what is missing, else for
 * the run. (Asked only then: a run read found is answered without a second promise.)
 */
async function runMissing(services: RestServices, caller: Caller, p: { thread_id: string; run_id: string }): Promise<never> {
  found(await services.threads.get(caller.projectId, p.thread_id), 'thread', p.thread_id);
  throw new NotFoundError('run', p.run_id);
}

/** The API's words for a message refused beside an active run. */
function asAddingMessages(error: unknown): never {
  if (error instanceof ThreadHasActiveRunError && error.details['runId']) {
    const { threadId, runId } = error.details as { threadId: string; runId: string };
    throw new RestError('THREAD_HAS_ACTIVE_RUN', `Can't add messages to ${threadId} while a run ${runId} is active.`);
  }
  throw error;
}

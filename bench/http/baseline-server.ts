/**
 * The baseline: a bare node:http + postgres.js handler that answers the benchmark's
 * operations with the same SQL Runway runs and the same JSON it returns. No GraphQL, no
 * framework: what the hardware and the database allow. GraphQL operations are routed by
 * operationName; the REST reads (GET /v1/threads/{t}/runs/{r} and GET
 * /v1/threads/{t}/runs) by path, answered as OpenAI's objects written out by hand.
 *
 *   DATABASE_URL=... PORT=0 node --import tsx bench/http/baseline-server.ts
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { monotonicFactory } from 'ulid';
import { FIRST_RUNS_OF_THREAD_DESC, RUN_IN_PROJECT, RUNS_PAGE } from './baseline-sql.js';
import { BENCH_PROJECT } from './seed.js';

// The same pool settings as Runway's (src/db/client.ts): 10 connections, one query in flight on each.
const sql = postgres(process.env.DATABASE_URL!, { max: 10, max_pipeline: 1, onnotice: () => {} } as postgres.Options<
  Record<string, never>
>);
/** Runway's default RUN_EXPIRES_AFTER_SECONDS: a queued run's expiresAt is createdAt + this. */
const RUN_EXPIRES_AFTER_SECONDS = 600;
const cursor = (id: string) => Buffer.from(`k1:${id}`).toString('base64url');
const ulid = monotonicFactory();

type Row = Record<string, any>;
const run = (r: Row) => ({
  id: r.id,
  object: 'thread.run',
  threadId: r.thread_id,
  assistantId: r.assistant_id,
  status: String(r.status).toUpperCase(),
  createdAt: Number(r.created_at),
  startedAt: r.started_at === null ? null : Number(r.started_at),
  completedAt: r.completed_at === null ? null : Number(r.completed_at),
  model: r.model,
  metadata: r.metadata,
  usage: r.usage === null ? null : { totalTokens: r.usage.totalTokens },
});
const listRun = (r: Row) => ({ id: r.id, status: String(r.status).toUpperCase(), createdAt: Number(r.created_at), model: r.model });
const step = (s: Row) => ({ id: s.id, type: String(s.type).toUpperCase(), status: String(s.status).toUpperCase() });

const handlers: Record<string, (v: Row) => Promise<unknown>> = {
  async RunById(v) {
    const [r] = await sql`select * from runs where id = ${v.runId} and project_id = ${BENCH_PROJECT} limit 1`;
    return { run: r && r.thread_id === v.threadId ? run(r) : null };
  },
  async RunsPage(v) {
    // Runway's own statement, text for text (the growth scenario checks it still is): the
    // thread in the project joined to its newest runs, one row of nulls for a thread
    // without runs, none for a missing thread.
    const [page] = RUNS_PAGE;
    const rows = await sql.unsafe(page, [v.first + 1, v.threadId, BENCH_PROJECT], { prepare: true });
    if (!rows.length) throw new Error('not found');
    const found = rows.filter((r) => r.id !== null);
    const nodes = found.slice(0, v.first);
    return {
      runs: {
        nodes: nodes.map(listRun),
        pageInfo: { hasNextPage: found.length > v.first, endCursor: nodes.length ? cursor(nodes.at(-1)!.id) : null },
      },
    };
  },
  async ThreadRunsSteps(v) {
    const [thread] = await sql`select * from threads where id = ${v.threadId} and project_id = ${BENCH_PROJECT}`;
    if (!thread) return { thread: null };
    const rows = (await sql`select * from runs where thread_id = ${v.threadId} order by id desc limit ${v.first + 1}`).slice(0, v.first);
    const ids = rows.map((r) => r.id);
    // One statement for every run's steps, the first 20 of each, as Runway's loader does.
    const steps = await sql`select * from (select *, row_number() over (partition by run_id order by id) as n
      from run_steps where run_id = any(${ids})) s where n <= 21 order by run_id, id`;
    const byRun = new Map<string, Row[]>();
    for (const s of steps) (byRun.get(s.run_id) ?? byRun.set(s.run_id, []).get(s.run_id)!).push(s);
    return {
      thread: {
        id: thread.id,
        runs: {
          nodes: rows.map((r) => ({
            id: r.id,
            status: String(r.status).toUpperCase(),
            steps: { nodes: (byRun.get(r.id) ?? []).slice(0, 20).map(step) },
          })),
        },
      },
    };
  },
  /**
   * createRun as a careful hand-written handler does it, in one transaction: bump (and so
   * lock) the thread, refuse a second active run, read the assistant, insert the run with
   * the columns and defaults RunCommands.create writes and its first event, and announce
   * it as Runway does (one NOTIFY, the same payload format) at commit.
   */
  async CreateRun(v) {
    const now = Math.floor(Date.now() / 1000);
    const created = await sql.begin(async (tx) => {
      const [thread] = await tx`update threads set run_count = run_count + 1
        where id = ${v.threadId} and project_id = ${BENCH_PROJECT} returning run_count`;
      if (!thread) throw new Error(`No thread found with id '${v.threadId}'.`);
      const [active] = await tx`select id from runs where thread_id = ${v.threadId}
        and status in ('queued', 'in_progress', 'requires_action', 'cancelling') limit 1`;
      if (active) throw new Error(`Thread ${v.threadId} already has an active run ${active.id}.`);
      const [assistant] = await tx`select model, instructions, tools from assistants
        where id = ${v.assistantId} and project_id = ${BENCH_PROJECT}`;
      if (!assistant) throw new Error(`No assistant found with id '${v.assistantId}'.`);
      const id = `run_${ulid()}`;
      const seq: number = thread.run_count;
      await tx`insert into runs (id, project_id, thread_id, thread_seq, assistant_id, created_at, status, expires_at,
          model, instructions, additional_instructions, tools, metadata, temperature, top_p, max_prompt_tokens,
          max_completion_tokens, truncation_strategy, tool_choice, parallel_tool_calls, response_format)
        values (${id}, ${BENCH_PROJECT}, ${v.threadId}, ${seq}, ${v.assistantId}, ${now}, 'queued', ${now + RUN_EXPIRES_AFTER_SECONDS},
          ${assistant.model}, ${assistant.instructions ?? ''}, null, ${tx.json(assistant.tools)}, '{}', 1, 1, null,
          null, '{"type":"auto","lastMessages":null}', '{"mode":"auto"}', true, '{"type":"auto"}')`;
      // The run as the change left it, kept with its event (RunStatusEvent.run), as Runway keeps it.
      const state = {
        usage: null,
        status: 'queued',
        version: 1,
        failedAt: null,
        expiresAt: now + RUN_EXPIRES_AFTER_SECONDS,
        lastError: null,
        startedAt: null,
        cancelledAt: null,
        completedAt: null,
        previousStatus: null,
        requiredAction: null,
        incompleteDetails: null,
      };
      await tx`insert into run_events (run_id, version, thread_id, thread_seq, from_status, to_status, at, run_state)
        values (${id}, 1, ${v.threadId}, ${seq}, null, 'queued', ${now}, ${tx.json(state)})`;
      await tx`select pg_notify('runway_events', ${`${id} ${v.threadId} ${seq} 1 queued - ${now}`})`;
      return { id, status: 'QUEUED' };
    });
    return { createRun: created };
  },
};

/** A run as the Assistants API sends it (RunObject), its fields in Runway's order. */
const runObject = (r: Row) => ({
  id: r.id,
  object: 'thread.run',
  created_at: Number(r.created_at),
  thread_id: r.thread_id,
  assistant_id: r.assistant_id,
  status: r.status,
  required_action: r.required_action && {
    type: 'submit_tool_outputs',
    submit_tool_outputs: {
      tool_calls: r.required_action.submitToolOutputs.toolCalls.map((c: Row) => ({
        id: c.id,
        type: 'function',
        function: { name: c.function.name, arguments: c.function.arguments },
      })),
    },
  },
  last_error: r.last_error && { code: r.last_error.code, message: r.last_error.message },
  expires_at: seconds(r.expires_at),
  started_at: seconds(r.started_at),
  cancelled_at: seconds(r.cancelled_at),
  failed_at: seconds(r.failed_at),
  completed_at: seconds(r.completed_at),
  incomplete_details: r.incomplete_details && { reason: r.incomplete_details.reason },
  model: r.model,
  instructions: r.instructions,
  tools: r.tools.map((t: Row) => ({
    type: 'function',
    function: withDefined(t.function, ['name', 'description', 'parameters', 'strict']),
  })),
  metadata: r.metadata,
  usage: r.usage && { prompt_tokens: r.usage.promptTokens, completion_tokens: r.usage.completionTokens, total_tokens: r.usage.totalTokens },
  temperature: r.temperature,
  top_p: r.top_p,
  max_prompt_tokens: r.max_prompt_tokens,
  max_completion_tokens: r.max_completion_tokens,
  truncation_strategy: r.truncation_strategy && {
    type: r.truncation_strategy.type,
    last_messages: r.truncation_strategy.lastMessages ?? null,
  },
  tool_choice: !r.tool_choice
    ? null
    : 'mode' in r.tool_choice
      ? r.tool_choice.mode
      : { type: 'function', function: { name: r.tool_choice.function.name } },
  parallel_tool_calls: r.parallel_tool_calls,
  response_format: !r.response_format
    ? null
    : r.response_format.type === 'auto'
      ? 'auto'
      : r.response_format.type !== 'json_schema'
        ? { type: r.response_format.type }
        : { type: 'json_schema', json_schema: withDefined(r.response_format.jsonSchema, ['name', 'description', 'schema', 'strict']) },
});
const seconds = (v: string | null) => (v === null ? null : Number(v));
/** `keys` of `o` in that order, those that are neither null nor undefined. */
const withDefined = (o: Row, keys: string[]) => Object.fromEntries(keys.filter((k) => o[k] != null).map((k) => [k, o[k]]));

const notFound = (kind: string, id: string) => ({
  status: 404,
  body: { error: { message: `No ${kind} found with id '${id}'.`, type: 'invalid_request_error', param: null, code: null } },
});

/** GET /v1/threads/{t}/runs/{r} and GET /v1/threads/{t}/runs[?limit=n]: Runway's statements, text for text. */
async function restRead(path: string, search: string): Promise<{ status: number; body: unknown }> {
  const [, v1, threads, threadId, runs, runId, more] = path.split('/');
  if (v1 !== 'v1' || threads !== 'threads' || !threadId || runs !== 'runs' || more !== undefined) {
    return { status: 404, body: { error: { message: 'unknown path', type: 'invalid_request_error', param: null, code: null } } };
  }
  if (runId) {
    const [r] = await sql.unsafe(RUN_IN_PROJECT, [runId, BENCH_PROJECT, 1], { prepare: true });
    return r && r.thread_id === threadId ? { status: 200, body: runObject(r) } : notFound('run', runId);
  }
  const limit = Number(/(?:^|&)limit=(\d+)/.exec(search)?.[1] ?? 20);
  const rows = await sql.unsafe(FIRST_RUNS_OF_THREAD_DESC, [limit + 1, threadId, BENCH_PROJECT], { prepare: true });
  if (!rows.length) return notFound('thread', threadId);
  const data = rows
    .filter((r) => r.id !== null)
    .slice(0, limit)
    .map(runObject);
  return {
    status: 200,
    body: { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: rows.length > limit },
  };
}

function send(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text);
}

/** The REST answers' headers, as Runway sends them. */
function sendJson(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

const server = createServer((req, res) => {
  if (req.url === '/health') return send(res, 200, { status: 'ok' });
  if (req.method === 'GET') {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    restRead(q < 0 ? url : url.slice(0, q), q < 0 ? '' : url.slice(q + 1)).then(
      ({ status, body }) => sendJson(res, status, body),
      () => sendJson(res, 500, { error: { message: 'server error', type: 'server_error', param: null, code: null } }),
    );
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let handler: ((v: Row) => Promise<unknown>) | undefined;
    let variables: Row;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      handler = handlers[body.operationName];
      variables = body.variables ?? {};
    } catch {
      return send(res, 400, { errors: [{ message: 'bad request' }] });
    }
    if (!handler) return send(res, 400, { errors: [{ message: 'unknown operation' }] });
    handler(variables).then(
      (data) => send(res, 200, { data }),
      (error: Error) => send(res, 200, { errors: [{ message: error.message }] }),
    );
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`);
});
process.on('SIGTERM', () => {
  server.close();
  void sql.end({ timeout: 1 }).then(() => process.exit(0));
});

/**
 * Traces, with the real SDK and an in-memory exporter, in a real server: one trace from
 * the client's createRun request through the worker's execution of the run, every span
 * a child of the one that caused it.
 */
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runs } from '../../src/db/schema.js';
import { startTracing, tracingOn } from '../../src/observability/tracing.js';
import { createAssistant, createRun, createThread, RUN_FIELDS } from '../support/fixtures.js';
import { eventually, startTestApp, until, type TestApp } from '../support/test-app.js';

const exporter = new InMemorySpanExporter();
let stopTracing: () => Promise<void>;
let t: TestApp;

beforeAll(async () => {
  stopTracing = await startTracing({ exporter, immediate: true, serviceName: 'runway-spec' });
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t.close();
  await stopTracing();
});

const spans = () => exporter.getFinishedSpans();
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const ancestorsOf = (span: ReadableSpan): string[] => {
  const byId = new Map(spans().map((s) => [s.spanContext().spanId, s]));
  const chain: string[] = [];
  for (let id = parentOf(span); id; id = byId.get(id) && parentOf(byId.get(id)!)) chain.push(id);
  return chain;
};
const childrenOf = (parent: ReadableSpan) => spans().filter((s) => parentOf(s) === parent.spanContext().spanId);

describe('traces', () => {
  it('follow a run from the createRun request to the worker: request -> operation -> run -> model call, with the statements of each', async () => {
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t, 'Hello traces');
    exporter.reset();

    // The client's own trace: the request continues it.
    const clientTrace = '0af7651916cd43dd8448eb211c80319c';
    const clientSpan = 'b7ad6b7169203331';
    const res = await fetch(t.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${clientTrace}-${clientSpan}-01` },
      body: JSON.stringify({
        query: `mutation StartRun($threadId: ID!, $input: CreateRunInput!) { createRun(threadId: $threadId, input: $input) { ${RUN_FIELDS} } }`,
        variables: { threadId, input: { assistantId } },
        operationName: 'StartRun',
      }),
    });
    const { data } = (await res.json()) as { data: { createRun: { id: string } } };
    const runId = data.createRun.id;
    await until(async () => ((await t.app.engine.getById(runId))?.status === 'completed' ? true : undefined));
    await eventually(() => spans().some((s) => s.name === 'run execute' && s.attributes['runway.run.id'] === runId));

    const request = spans().find((s) => s.name === 'POST /graphql');
    expect(request).toBeDefined();
    expect(request!.spanContext().traceId).toBe(clientTrace);
    expect(parentOf(request!)).toBe(clientSpan);
    expect(request!.attributes['http.response.status_code']).toBe(200);

    const operation = spans().find((s) => s.name === 'graphql mutation StartRun');
    expect(operation).toBeDefined();
    expect(parentOf(operation!)).toBe(request!.spanContext().spanId);
    expect(operation!.attributes['graphql.operation.name']).toBe('StartRun');
    // The resolvers' statements are the operation's children.
    expect(childrenOf(operation!).some((s) => s.name.startsWith('db ') && typeof s.attributes['db.query.text'] === 'string')).toBe(true);

    // The run carries the operation's traceparent; the worker's span of the run is its child.
    const [row] = await t.app.database.db.select({ traceparent: runs.traceparent }).from(runs).where(eq(runs.id, runId));
    expect(row!.traceparent).toBe(`00-${clientTrace}-${operation!.spanContext().spanId}-01`);
    const execution = spans().find((s) => s.name === 'run execute' && s.attributes['runway.run.id'] === runId)!;
    expect(execution.spanContext().traceId).toBe(clientTrace);
    expect(parentOf(execution)).toBe(operation!.spanContext().spanId);
    expect(execution.attributes['runway.run.model']).toBe('scripted');

    const model = childrenOf(execution).find((s) => s.name === 'model scripted');
    expect(model).toBeDefined();
    expect(model!.attributes['gen_ai.system']).toBe('scripted');
    // The engine's reads and writes of the run are the execution's children too.
    expect(childrenOf(execution).filter((s) => s.name.startsWith('db ')).length).toBeGreaterThanOrEqual(1);
    // Every span of the run's work is in the client's trace.
    for (const s of [operation!, execution, model!]) expect(s.spanContext().traceId).toBe(clientTrace);
  });

  it('names REST requests by their route, and a run created over REST is continued the same way', async () => {
    const assistantId = await createAssistant(t);
    exporter.reset();
    const res = await fetch(`${t.restUrl}/threads/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'openai-beta': 'assistants=v2' },
      body: JSON.stringify({ assistant_id: assistantId, thread: { messages: [{ role: 'user', content: 'hi' }] } }),
    });
    expect(res.status).toBe(200);
    const run = (await res.json()) as { id: string; thread_id: string };
    await until(async () => ((await t.app.engine.getById(run.id))?.status === 'completed' ? true : undefined));
    await eventually(() => spans().some((s) => s.name === 'run execute' && s.attributes['runway.run.id'] === run.id));
    const request = spans().find((s) => s.name === 'POST /v1/threads/runs')!;
    expect(request).toBeDefined();
    expect(request.attributes['http.route']).toBe('/v1/threads/runs');
    // No client trace: the request starts one.
    expect(parentOf(request)).toBeUndefined();
    const execution = spans().find((s) => s.name === 'run execute' && s.attributes['runway.run.id'] === run.id)!;
    expect(execution.spanContext().traceId).toBe(request.spanContext().traceId);
    // The run was made inside the request (in its transaction): the request is an ancestor.
    expect(ancestorsOf(execution)).toContain(request.spanContext().spanId);
  });

  it('once shut down: no span, and runs are stored without a traceparent', async () => {
    await stopTracing();
    expect(tracingOn).toBe(false);
    exporter.reset();
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t, 'untraced');
    const run = await createRun(t, threadId, { assistantId });
    await until(async () => ((await t.app.engine.getById(run.id))?.status === 'completed' ? true : undefined));
    const [row] = await t.app.database.db.select({ traceparent: runs.traceparent }).from(runs).where(eq(runs.id, run.id));
    expect(row!.traceparent).toBeNull();
    expect(spans()).toEqual([]);
  });
});

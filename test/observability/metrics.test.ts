/**
 * /metrics, scraped over real HTTP as Prometheus does: what a run moves, what requests and
 * sockets move, and who may read it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, eventually, startTestApp, until, type TestApp } from '../support/test-app.js';
import { createAssistant, createRun, createThread, newRun } from '../support/fixtures.js';

/** One scrape, as `name{labels}` -> value (labels as Prometheus prints them). */
type Scrape = Map<string, number>;

async function scrape(base: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await fetch(`${base}/metrics`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples: Scrape = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** A sample's value, 0 when absent (a counter not yet moved). */
const value = (s: Scrape, key: string) => s.get(key) ?? 0;

const base = (t: TestApp) => t.url.replace(/\/graphql$/, '');

describe('/metrics in open local mode', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: true, subscriptionBuffer: 2 });
  });
  afterAll(() => t.close());

  it('serves Prometheus text with every metric family, the default process metrics among them', async () => {
    const res = await fetch(`${base(t)}/metrics`);
    const text = await res.text();
    for (const family of [
      'runway_runs_active',
      'runway_run_transitions_total',
      'runway_queue_depth',
      'runway_queue_oldest_age_seconds',
      'runway_run_queue_wait_seconds',
      'runway_model_call_duration_seconds',
      'runway_model_call_errors_total',
      'runway_lease_takeovers_total',
      'runway_runs_expired_total',
      'runway_websockets_open',
      'runway_subscriptions_open',
      'runway_events_delivered_total',
      'runway_subscriptions_lagged_total',
      'runway_http_request_duration_seconds',
      'runway_graphql_operation_duration_seconds',
      'runway_db_connections_busy',
      'runway_db_pool_size',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text, family).toContain(`# TYPE ${family} `);
    }
    const first = await scrape(base(t));
    expect(value(first, 'runway_db_pool_size{pool="gateway"}')).toBeGreaterThanOrEqual(1);
  });

  it('counts a run: its transitions, its wait in the queue, its model call, the requests that made and read it', async () => {
    const before = await scrape(base(t));
    const { threadId, runId } = await newRun(t);
    await until(async () => {
      const r = await fetch(`${t.restUrl}/threads/${threadId}/runs/${runId}`);
      const run = (await r.json()) as { status: string };
      return run.status === 'completed' ? run : undefined;
    });
    await t.ok('query RunStatus($id: ID!) { node(id: $id) { id } }', { id: runId });
    const after = await scrape(base(t));
    const moved = (key: string) => value(after, key) - value(before, key);

    for (const to of ['queued', 'in_progress', 'completed'])
      expect(moved(`runway_run_transitions_total{to="${to}"}`), to).toBeGreaterThanOrEqual(1);
    expect(moved('runway_run_queue_wait_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(moved('runway_model_call_duration_seconds_count{provider="scripted",outcome="ok"}')).toBeGreaterThanOrEqual(1);
    expect(
      moved('runway_http_request_duration_seconds_count{api="graphql",route="/graphql",method="POST",status="200"}'),
    ).toBeGreaterThanOrEqual(4);
    // REST requests are labelled by their route's pattern, never by the ids in the path.
    expect(
      moved(
        'runway_http_request_duration_seconds_count{api="rest",route="/v1/threads/{thread_id}/runs/{run_id}",method="GET",status="200"}',
      ),
    ).toBeGreaterThanOrEqual(1);
    expect([...after.keys()].some((k) => k.includes(runId))).toBe(false);
    expect(moved('runway_graphql_operation_duration_seconds_count{operation="RunStatus",type="query"}')).toBe(1);
    expect(moved('runway_graphql_operation_duration_seconds_count{operation="anonymous",type="mutation"}')).toBeGreaterThanOrEqual(3);
    // The scrape before this one was a request too.
    expect(moved('runway_http_request_duration_seconds_count{api="other",route="/metrics",method="GET",status="200"}')).toBe(1);
  });

  it('counts a failed model call by provider and code', async () => {
    const before = await scrape(base(t));
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t, 'fail rate_limit_exceeded');
    const run = await createRun(t, threadId, { assistantId });
    await until(async () => ((await t.app.engine.getById(run.id))?.status === 'failed' ? true : undefined));
    const after = await scrape(base(t));
    const moved = (key: string) => value(after, key) - value(before, key);
    expect(moved('runway_model_call_errors_total{provider="scripted",code="rate_limit_exceeded"}')).toBe(1);
    expect(moved('runway_model_call_duration_seconds_count{provider="scripted",outcome="error"}')).toBe(1);
    expect(moved('runway_run_transitions_total{to="failed"}')).toBe(1);
  });

  it('shows the websockets and subscriptions open, the events delivered, and a subscription cut off as lagging', async () => {
    const before = await scrape(base(t));
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t, 'sleep 400');
    const client = t.wsClient();
    const sub = collect(client, 'subscription($threadId: ID!) { threadEvents(threadId: $threadId) { __typename } }', { threadId });
    // With a buffer of 2 this reader may be cut off too; that is not what is checked here.
    sub.done.catch(() => {});
    await eventually(() => t.app.services.bus.subscriberCount() > 0);
    const open = await scrape(base(t));
    expect(value(open, 'runway_websockets_open')).toBeGreaterThanOrEqual(1);
    expect(value(open, 'runway_subscriptions_open')).toBeGreaterThanOrEqual(1);
    const run = await createRun(t, threadId, { assistantId });
    await until(async () => ((await t.app.engine.getById(run.id))?.status === 'completed' ? true : undefined));
    await eventually(() => sub.events.length >= 1);
    sub.stop();
    await eventually(() => t.app.services.bus.subscriberCount() === 0);
    const after = await scrape(base(t));
    expect(value(after, 'runway_events_delivered_total') - value(before, 'runway_events_delivered_total')).toBeGreaterThanOrEqual(3);
    expect(value(after, 'runway_subscriptions_open')).toBe(0);

    // A reader that takes nothing falls behind SUBSCRIPTION_BUFFER (2 here) events.
    const beforeLag = await scrape(base(t));
    const lagging = t.app.services.bus.subscribe(`thread:${threadId}`);
    t.app.services.bus.publish([1, 2, 3].map((version) => ({ ...fakeEvent(run.id, threadId), version })));
    await expect(lagging.next()).rejects.toThrow();
    const lagged = await scrape(base(t));
    expect(value(lagged, 'runway_subscriptions_lagged_total') - value(beforeLag, 'runway_subscriptions_lagged_total')).toBe(1);
  });

  it('shows the queue: its depth and the age of its oldest run (no worker to take them)', async () => {
    const gateway = await startTestApp({ worker: false });
    try {
      const empty = await scrape(base(gateway));
      expect(value(empty, 'runway_queue_depth')).toBe(0);
      expect(value(empty, 'runway_queue_oldest_age_seconds')).toBe(0);
      await newRun(gateway);
      await newRun(gateway, { model: 'scripted-two' });
      const queued = await scrape(base(gateway));
      expect(value(queued, 'runway_queue_depth')).toBe(2);
      expect(value(queued, 'runway_queue_oldest_age_seconds')).toBeGreaterThanOrEqual(0);
      expect(value(queued, 'runway_runs_active{status="queued",model="scripted"}')).toBe(1);
      expect(value(queued, 'runway_runs_active{status="queued",model="scripted-two"}')).toBe(1);
    } finally {
      await gateway.close();
    }
  });
});

function fakeEvent(runId: string, threadId: string) {
  return { runId, threadId, threadSeq: 1, version: 1, status: 'queued' as const, previousStatus: null, at: 0 };
}

describe('/metrics with API keys', () => {
  const key = 'k'.repeat(32);
  const token = 'metrics-token-0123456789';

  it('needs METRICS_TOKEN as a Bearer token: 401 without one, 403 with another (an API key included), 200 with it', async () => {
    const t = await startTestApp({ apiKeys: new Map([[key, 'p1']]), apiKey: key, metricsToken: token });
    try {
      const missing = await fetch(`${base(t)}/metrics`);
      expect(missing.status).toBe(401);
      expect(await missing.json()).toMatchObject({ errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
      for (const wrong of ['nope', key, `${token}x`]) {
        const res = await fetch(`${base(t)}/metrics`, { headers: { authorization: `Bearer ${wrong}` } });
        expect(res.status, wrong).toBe(403);
        const body = (await res.json()) as { errors: { message: string; extensions: { code: string } }[] };
        expect(body.errors[0]!.extensions.code).toBe('FORBIDDEN');
        expect(body.errors[0]!.message).toMatch(/METRICS_TOKEN/);
      }
      await scrape(base(t), { authorization: `Bearer ${token}` });
    } finally {
      await t.close();
    }
  });

  it('is refused on the API port without METRICS_TOKEN (scrape METRICS_PORT instead)', async () => {
    const t = await startTestApp({ apiKeys: new Map([[key, 'p1']]), apiKey: key });
    try {
      for (const headers of [{}, { authorization: `Bearer ${key}` }] as Record<string, string>[]) {
        const res = await fetch(`${base(t)}/metrics`, { headers });
        expect(res.status).toBe(403);
        const body = (await res.json()) as { errors: { message: string; extensions: { code: string } }[] };
        expect(body.errors[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
        expect(body.errors[0]!.message).toMatch(/METRICS_PORT/);
      }
    } finally {
      await t.close();
    }
  });
});

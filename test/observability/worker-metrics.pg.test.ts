/**
 * A worker process (ROLE=worker: no API port) is scraped on METRICS_PORT, and counts the
 * runs it executes. (PostgreSQL: a gateway here and a worker process on one database.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildAppOn, queueRun, scratchDatabase, spawnWorker, waitUntil, type Leftovers } from '../support/queued-runs.js';

const leftovers: Leftovers = [];
afterEach(async () => {
  for (const dispose of leftovers.splice(0).reverse()) await dispose();
});

const sample = (text: string, key: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${key} `));
  return line ? Number(line.slice(key.length + 1)) : 0;
};

describe('a worker process with METRICS_PORT', () => {
  it('serves /metrics on that port (with METRICS_TOKEN), counting the runs it claimed and executed', async () => {
    const db = await scratchDatabase(leftovers);
    const gateway = await buildAppOn(leftovers, db);
    const token = 'worker-metrics-token-42';
    const child = spawnWorker(leftovers, db.url!, {
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      METRICS_TOKEN: token,
      API_KEYS: `${'w'.repeat(20)}:p1`,
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    await waitUntil(async () => /Metrics on http:\/\/\S+\/metrics/.test(out), 30_000, 'the metrics port');
    const url = out.match(/Metrics on (http:\/\/\S+\/metrics)/)![1]!.replace('localhost', '127.0.0.1');

    const runs = await Promise.all([queueRun(gateway, 'one'), queueRun(gateway, 'two'), queueRun(gateway, 'fail server_error')]);
    const statuses = async () => Promise.all(runs.map(async (r) => (await gateway.engine.getById(r.id))!.status));
    await waitUntil(async () => (await statuses()).every((s) => s === 'completed' || s === 'failed'), 30_000, 'the worker to run them');

    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(403);
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    // Counted where they were committed: in the worker, not in this (gateway) process.
    expect(sample(text, 'runway_run_transitions_total{to="in_progress"}')).toBe(3);
    expect(sample(text, 'runway_run_transitions_total{to="completed"}')).toBe(2);
    expect(sample(text, 'runway_run_transitions_total{to="failed"}')).toBe(1);
    expect(sample(text, 'runway_run_transitions_total{to="queued"}')).toBe(0);
    expect(sample(text, 'runway_run_queue_wait_seconds_count')).toBe(3);
    expect(sample(text, 'runway_model_call_duration_seconds_count{provider="scripted",outcome="ok"}')).toBe(2);
    expect(sample(text, 'runway_model_call_errors_total{provider="scripted",code="server_error"}')).toBe(1);
    expect(sample(text, 'runway_queue_depth')).toBe(0);
    expect(sample(text, 'runway_db_pool_size{pool="engine"}')).toBeGreaterThanOrEqual(1);
    // The port serves nothing else.
    expect((await fetch(url.replace('/metrics', '/graphql'))).status).toBe(404);
  }, 90_000);
});

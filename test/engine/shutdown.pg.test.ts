/**
 * A restart behind a load balancer: a client that only knows the balancer's URL comes
 * back to the process that stays, by itself, and misses no transition. (PostgreSQL: two
 * processes on one database.)
 */
import { createClient } from 'graphql-ws';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createScratchDatabase } from '../support/database.js';
import { gqlAt as gql, startRunwayProcess } from '../support/processes.js';
import { startLoadBalancer } from '../support/tcp-proxy.js';
import { eventually } from '../support/test-app.js';

const leftovers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const dispose of leftovers.splice(0).reverse()) await dispose();
});

describe('restart', () => {
  it('a stock graphql-ws client (default retries) comes back through the load balancer by itself and misses no transition', async () => {
    const db = await createScratchDatabase();
    leftovers.push(() => db.drop());
    const env = { DATABASE_URL: db.url!, SHUTDOWN_DRAIN_SECONDS: '1' };
    const leaving = await startRunwayProcess(env);
    leftovers.push(() => leaving.kill());
    const staying = await startRunwayProcess(env);
    leftovers.push(() => staying.kill());
    const balancer = await startLoadBalancer([leaving, staying].map((p) => Number(new URL(p.url!).port)));
    leftovers.push(() => balancer.close());
    const url = `http://127.0.0.1:${balancer.port}/graphql`;

    const { createAssistant } = await gql(
      url,
      'mutation { createAssistant(input: { model: "scripted", tools: [{ type: FUNCTION, function: { name: "lookup" } }] }) { id } }',
    );
    const { createThread } = await gql(
      url,
      'mutation { createThread(input: { messages: [{ role: USER, content: "call lookup {}" }] }) { id } }',
    );
    const ids = { t: createThread.id, r: '' };
    ids.r = (
      await gql(url, 'mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }', {
        t: ids.t,
        a: createAssistant.id,
      })
    ).createRun.id;

    // The client as an app makes it: nothing but the URL (5 retries, randomised backoff).
    const closes: number[] = [];
    let connections = 0;
    const client = createClient({
      url: url.replace('http', 'ws'),
      webSocketImpl: WebSocket,
      on: { connected: () => void connections++, closed: (e: any) => void closes.push(e.code) },
    });
    leftovers.push(async () => void (await client.dispose()));
    const seen: { status: string; version: number }[] = [];
    const completed = new Promise<void>((resolve, reject) =>
      client.subscribe(
        { query: 'subscription($r: ID!) { runStatusChanged(runId: $r) { status version } }', variables: { r: ids.r } },
        { next: (v: any) => void seen.push(v.data.runStatusChanged), error: reject, complete: resolve },
      ),
    );
    completed.catch(() => {}); // asserted below; a failure must not go unhandled meanwhile
    await eventually(() => seen.some((e) => e.status === 'REQUIRES_ACTION'), 10_000);
    const beforeRestart = seen.length;

    // The balancer sent the client to the first process: that one goes away.
    leaving.child.kill('SIGTERM');
    expect(await leaving.exited).toBe(0);
    expect(closes).toEqual([1012]);
    // The client reconnects on its own (its first retry waits 1.3 to 4 s) and subscribes
    // again; with no position given, it gets the run's current state first.
    await eventually(() => connections === 2 && seen.length > beforeRestart, 20_000);
    expect(seen[beforeRestart]!.status).toBe('REQUIRES_ACTION');

    const { run } = await gql(
      url,
      'query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { requiredAction { submitToolOutputs { toolCalls { id } } } } }',
      ids,
    );
    const c = run.requiredAction.submitToolOutputs.toolCalls[0].id;
    await gql(
      url,
      'mutation($t: ID!, $r: ID!, $c: ID!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: [{ toolCallId: $c, output: "ok" }]) { id } }',
      { ...ids, c },
    );
    await completed;
    // From where the client stood, every transition, in order, none twice.
    const after = seen.slice(beforeRestart);
    expect(after.map((e) => e.status)).toEqual(['REQUIRES_ACTION', 'QUEUED', 'IN_PROGRESS', 'COMPLETED']);
    expect(after.map((e) => e.version)).toEqual(after.map((_, i) => after[0]!.version + i));
  }, 60_000);
});

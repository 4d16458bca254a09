/**
 * Three processes on one PostgreSQL: two gateways and a worker. Events committed by any
 * of them reach the subscribers of every gateway, in order, also across a drop of the
 * listener's database connection. (PGlite is one process's database: PostgreSQL only.)
 */
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';
import { gqlAt, startRunwayProcess, type RunwayProcess } from '../support/processes.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { eventually } from '../support/test-app.js';

describe('gateways A and B and a worker W on one PostgreSQL', () => {
  let db: ScratchDatabase;
  let a: RunwayProcess;
  let b: RunwayProcess;
  let w: RunwayProcess;
  let proxy: TcpProxy;
  beforeAll(async () => {
    db = await createScratchDatabase();
    const env = { DATABASE_URL: db.url! };
    // A reaches the database through a proxy, so a test can take it away from A alone.
    const target = new URL(db.url!);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(db.url!);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    // The first process migrates; the others find the schema ready.
    a = await startRunwayProcess({ DATABASE_URL: viaProxy.toString(), ROLE: 'gateway' });
    [b, w] = await Promise.all([
      startRunwayProcess({ ...env, ROLE: 'gateway' }),
      startRunwayProcess({ ...env, ROLE: 'worker', LEASE_SECONDS: '5' }),
    ]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a?.kill(), b?.kill(), w?.kill()]);
    await proxy?.close();
    await db?.drop();
  });

  const THREAD_EVENTS = `subscription($t: ID!) { threadRunsChanged(threadId: $t) { runId version previousStatus status cursor } }`;

  async function watchOnA(threadId: string) {
    const events: any[] = [];
    const client = createClient({ url: a.url!.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const stop = client.subscribe(
      { query: THREAD_EVENTS, variables: { t: threadId } },
      {
        next: (v: any) => void events.push(v.data?.threadRunsChanged ?? v),
        error: (e) => void events.push({ error: e }),
        complete: () => {},
      },
    );
    return { events, dispose: async () => (stop(), await client.dispose()) };
  }

  async function runThroughB(threadId: string, assistantId: string, message: string) {
    await gqlAt(b.url!, `mutation($t: ID!, $m: String!) { createMessage(threadId: $t, input: { role: USER, content: $m }) { id } }`, {
      t: threadId,
      m: message,
    });
    const { createRun } = await gqlAt(b.url!, `mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }`, {
      t: threadId,
      a: assistantId,
    });
    return createRun.id as string;
  }

  /** Every run's versions 1..n appear once, in order, runs one after another. */
  function expectGapless(events: any[], runIds: string[]) {
    expect(events.filter((e) => e.error)).toEqual([]);
    const byRun = runIds.map((id) => events.filter((e) => e.runId === id));
    for (const list of byRun) expect(list.map((e) => e.version)).toEqual(list.map((_: unknown, i: number) => i + 1));
    expect(events.map((e) => e.runId)).toEqual(byRun.flat().map((e) => e.runId)); // thread order
  }

  async function setUp() {
    const { createAssistant } = await gqlAt(
      b.url!,
      `mutation { createAssistant(input: { model: "scripted", tools: [{ type: FUNCTION, function: { name: "lookup" } }] }) { id } }`,
    );
    const { createThread } = await gqlAt(b.url!, `mutation { createThread { id } }`);
    return { assistantId: createAssistant.id as string, threadId: createThread.id as string };
  }

  async function waitTerminal(runId: string, threadId: string) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const { run } = await gqlAt(b.url!, `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { status } }`, { t: threadId, r: runId });
      if (['COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED', 'INCOMPLETE'].includes(run.status)) return run.status;
      if (run.status === 'REQUIRES_ACTION') {
        const { run: r } = await gqlAt(
          b.url!,
          `query($t: ID!, $r: ID!) { run(threadId: $t, runId: $r) { requiredAction { submitToolOutputs { toolCalls { id } } } } }`,
          { t: threadId, r: runId },
        );
        const outputs = r.requiredAction.submitToolOutputs.toolCalls.map((c: any) => ({ toolCallId: c.id, output: 'found' }));
        await gqlAt(
          b.url!,
          `mutation($t: ID!, $r: ID!, $o: [ToolOutputInput!]!) { submitToolOutputs(threadId: $t, runId: $r, toolOutputs: $o) { id } }`,
          { t: threadId, r: runId, o: outputs },
        ).catch(() => {});
      }
      if (Date.now() > deadline) throw new Error(`run ${runId} stuck in ${run.status}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('a subscriber on A sees every transition of runs created through B and executed by W, in order', async () => {
    const { assistantId, threadId } = await setUp();
    const watch = await watchOnA(threadId);
    await new Promise((r) => setTimeout(r, 300)); // the subscription is registered on A
    const runIds: string[] = [];
    for (const message of ['hello', 'call lookup {"q":1}', 'again', 'fail server_error']) {
      const runId = await runThroughB(threadId, assistantId, message);
      runIds.push(runId);
      await waitTerminal(runId, threadId);
    }
    await eventually(() => watch.events.filter((e) => e.runId === runIds[3] && e.status === 'FAILED').length === 1, 5000);
    await watch.dispose();
    expectGapless(watch.events, runIds);
    // queued, in_progress, completed | + requires_action, queued, in_progress | ... | failed
    expect(watch.events.map((e) => e.status)).toEqual([
      'QUEUED',
      'IN_PROGRESS',
      'COMPLETED',
      'QUEUED',
      'IN_PROGRESS',
      'REQUIRES_ACTION',
      'QUEUED',
      'IN_PROGRESS',
      'COMPLETED',
      'QUEUED',
      'IN_PROGRESS',
      'COMPLETED',
      'QUEUED',
      'IN_PROGRESS',
      'FAILED',
    ]);
  }, 60_000);

  it("loses nothing when A's database goes away mid-stream", async () => {
    const { assistantId, threadId } = await setUp();
    const watch = await watchOnA(threadId);
    await new Promise((r) => setTimeout(r, 300));
    const first = await runThroughB(threadId, assistantId, 'before the drop');
    await waitTerminal(first, threadId);

    // A loses every database connection, its listener's too, for 1.5 s, as in a
    // database restart. B and W go on: a whole run happens while A hears nothing.
    const outage = proxy.interrupt(1500);
    const during = await runThroughB(threadId, assistantId, 'during the drop');
    await waitTerminal(during, threadId);
    await outage;
    // postgres.js reconnects and re-listens; A's streams catch up from run_events.
    const after = await runThroughB(threadId, assistantId, 'after the drop');
    await waitTerminal(after, threadId);

    await eventually(() => watch.events.filter((e) => e.runId === after && e.status === 'COMPLETED').length === 1, 10_000);
    await watch.dispose();
    expectGapless(watch.events, [first, during, after]);
    expect(watch.events).toHaveLength(9);
  }, 60_000);
});

/**
 * One connection cut at a chosen statement of the engine (the process reaches PostgreSQL
 * through a proxy that cuts the connection which sends given bytes): the commit of a
 * model's answer, the commit of its tool calls, a claim, a read before the model call.
 * Whether the server had acted on the statement or not, the run ends as the model said,
 * once, and soon (its lease is 30 s: nothing here waits for it to lapse).
 * (PGlite has no connection to cut: PostgreSQL only.)
 */
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { messages, runSteps, type RunRow } from '../../src/db/schema.js';
import { createLogger } from '../../src/log.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

describe('a connection cut at one statement of the engine', () => {
  let db: ScratchDatabase;
  let proxy: TcpProxy;
  /** The process under test, behind the proxy. */
  let app: App;
  /** The test's own view of the database, direct. */
  let view: App;
  let assistantId: string;

  beforeAll(async () => {
    db = await createScratchDatabase();
    const target = new URL(db.url!);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    app = await buildApp(
      { databaseUrl: proxy.url(db.url!), pgliteDir: 'memory://', databasePoolSize: 10, runExpiresAfterSeconds: 600, production: false },
      // One run at a time: a run queued behind another is claimed when the test says.
      { logger: createLogger({ level: process.env.LOG_LEVEL ?? 'error' }), worker: { leaseSeconds: 30, pollMs: 1000, concurrency: 1 } },
    );
    view = await buildApp(
      { databaseUrl: db.url, pgliteDir: 'memory://', databasePoolSize: 4, runExpiresAfterSeconds: 600, production: false },
      { logger: createLogger({ level: 'error' }), worker: false },
    );
    const assistant = await view.services.assistants.create('default', {
      model: 'scripted',
      tools: [{ type: 'function', function: { name: 'get_weather' } }],
    });
    assistantId = assistant.id;
  });
  afterAll(async () => {
    await view?.stop();
    await app?.stop();
    await proxy?.close();
    await db?.drop();
  });

  /** A queued run whose last user message is `content`. */
  async function queue(content: string): Promise<RunRow> {
    const thread = await view.services.threads.create('default', { messages: [{ role: 'user', content }] });
    return view.services.runs.create('default', thread.id, { assistantId });
  }

  async function settled(runId: string, timeoutMs = 10_000): Promise<RunRow> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = (await view.engine.getById(runId))!;
      if (!['queued', 'in_progress', 'cancelling'].includes(run.status)) return run;
      if (Date.now() > deadline) throw new Error(`run ${runId} still ${run.status} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until the worker has taken the run (its one slot is then busy). */
  async function settledOrStarted(runId: string): Promise<void> {
    while ((await view.engine.getById(runId))!.status === 'queued') await new Promise((r) => setTimeout(r, 20));
  }

  async function recorded(run: RunRow) {
    const { db: d } = view.database;
    const answers = await d
      .select()
      .from(messages)
      .where(and(eq(messages.threadId, run.threadId), eq(messages.role, 'assistant')));
    const steps = await d.select().from(runSteps).where(eq(runSteps.runId, run.id));
    return { answers: answers.map((m) => m.content), steps: steps.map((s) => s.type) };
  }

  for (const when of ['after', 'before'] as const) {
    it(`completes a run whose answer's commit lost its connection (${when} the server got it)`, async () => {
      const marker = `answer-${when}`;
      const run = await queue(`sleep 300\n${marker}`);
      // The answer's text travels only in the statement that commits it.
      const cut = proxy.cutWhen(marker, { how: when === 'after' ? 'reset' : 'close', when });
      const ended = await settled(run.id);
      await cut;
      expect({ status: ended.status, lastError: ended.lastError }).toEqual({ status: 'completed', lastError: null });
      expect(await recorded(ended)).toEqual({ answers: [`echo: sleep 300\n${marker}`], steps: ['message_creation'] });
    });
  }

  for (const when of ['after', 'before'] as const) {
    it(`waits for tool outputs once the tool calls' commit lost its connection (${when} the server committed it)`, async () => {
      const run = await queue(`sleep 300\ncall get_weather {"city":"Oslo-${when}"}`);
      const cut =
        when === 'after'
          ? // The next transaction to commit is the one that records the calls: the
            // answer to its COMMIT never reaches the worker.
            proxy.cutWhen('COMMIT', { sentBy: 'server', how: 'reset', when: 'before' })
          : // The calls' arguments travel only in the transaction that records them.
            proxy.cutWhen(`Oslo-${when}`, { how: 'close', when: 'before' });
      const ended = await settled(run.id);
      await cut;
      expect({ status: ended.status, lastError: ended.lastError }).toEqual({ status: 'requires_action', lastError: null });
      expect(ended.requiredAction?.submitToolOutputs.toolCalls.map((c) => c.function.name)).toEqual(['get_weather']);
      expect(await recorded(ended)).toEqual({ answers: [], steps: ['tool_calls'] });
    });
  }

  it('starts, without waiting for its lease to lapse, a run whose claim committed on a lost connection', async () => {
    const busy = await queue('sleep 500');
    await settledOrStarted(busy.id);
    const run = await queue('hello');
    // Claimed when the worker's slot frees; the worker's id travels in its claims (and
    // takeovers) only.
    const cut = proxy.cutWhen(app.worker!.id, { how: 'reset', when: 'after' });
    await cut;
    const ended = await settled(run.id, 10_000);
    expect(ended.status).toBe('completed');
    expect(await recorded(ended)).toEqual({ answers: ['echo: hello'], steps: ['message_creation'] });
  });

  it('completes a run whose read of its steps, before the model call, lost its connection', async () => {
    const busy = await queue('sleep 500');
    await settledOrStarted(busy.id);
    const run = await queue('hello again');
    // Claimed when the worker's slot frees; then the first statement that names the run is
    // the read of its steps.
    const cut = proxy.cutWhen(run.id, { how: 'close', when: 'before' });
    const ended = await settled(run.id);
    await cut;
    expect(ended.status).toBe('completed');
    expect(await recorded(ended)).toEqual({ answers: ['echo: hello again'], steps: ['message_creation'] });
  });
});

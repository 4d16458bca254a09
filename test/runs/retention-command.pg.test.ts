/**
 * `npm run retention:prune` against a running Runway: the history of a run that ended
 * before the window goes, and a subscriber of the running process that resumes from one of
 * its cursors is told CURSOR_EXPIRED, then starts over without `after`. (The command and
 * the server share the database: PostgreSQL only.)
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createClient } from 'graphql-ws';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeContentCursor } from '../../src/realtime/content-streams.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';
import { gqlAt, nodeCommand, startRunwayProcess, type RunwayProcess } from '../support/processes.js';

const run = promisify(execFile);

describe('npm run retention:prune beside a running Runway', () => {
  let db: ScratchDatabase;
  let runway: RunwayProcess;
  beforeAll(async () => {
    db = await createScratchDatabase();
    // The process's own worker keeps everything: the command is what prunes here.
    runway = await startRunwayProcess({ DATABASE_URL: db.url!, RUN_EVENTS_RETENTION_DAYS: '0' });
  }, 60_000);
  afterAll(async () => {
    await runway?.kill();
    await db?.drop();
  });

  function subscribe(variables: Record<string, unknown>): Promise<any[]> {
    const client = createClient({ url: runway.url!.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const results: any[] = [];
    return new Promise((resolve) => {
      client.subscribe(
        {
          query:
            'subscription($t: ID!, $r: ID!, $after: String) { runEvents(threadId: $t, runId: $r, after: $after) { __typename ... on RunStatusEvent { status } } }',
          variables,
        },
        {
          next: (value) => void results.push(value),
          error: (error) => void results.push({ errors: error }),
          complete: () => void Promise.resolve(client.dispose()).then(() => resolve(results)),
        },
      );
    });
  }

  it('prunes the run that ended before the window; resuming from its cursor is CURSOR_EXPIRED', async () => {
    const { createAssistant } = await gqlAt(runway.url!, 'mutation { createAssistant(input: { model: "scripted" }) { id } }');
    const { createThread } = await gqlAt(
      runway.url!,
      'mutation { createThread(input: { messages: [{ role: USER, content: "hi" }] }) { id } }',
    );
    const t = createThread.id;
    const { createRun } = await gqlAt(
      runway.url!,
      'mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }',
      {
        t,
        a: createAssistant.id,
      },
    );
    const r = createRun.id;
    const whole = await subscribe({ t, r, after: encodeContentCursor({ threadSeq: 1, version: 0, sub: 0 }) });
    expect(whole.at(-1).data.runEvents).toEqual({ __typename: 'RunStatusEvent', status: 'COMPLETED' });

    const sql = postgres(db.url!, { max: 1, onnotice: () => {} });
    try {
      await sql`update run_events set at = at - ${40 * 86_400} where run_id = ${r}`;
    } finally {
      await sql.end();
    }
    const { stdout } = await run(process.execPath, nodeCommand('src/runs/prune-events.ts'), {
      env: { ...process.env, DATABASE_URL: db.url!, RUN_EVENTS_RETENTION_DAYS: '30' },
    });
    expect(stdout).toContain('Pruned the event history of 1 run(s) that ended more than 30 day(s) ago.');

    const expired = await subscribe({ t, r, after: encodeContentCursor({ threadSeq: 1, version: 1, sub: 0 }) });
    expect(expired[0].errors[0].extensions).toMatchObject({ code: 'CURSOR_EXPIRED', threadId: t, runId: r });
    const fresh = await subscribe({ t, r });
    expect(fresh.map((e) => e.data.runEvents.status)).toEqual(['COMPLETED']);
  });
});

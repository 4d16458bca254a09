/**
 * The answer written by a worker process reaches subscribers on other gateway processes
 * as it is written, and a subscriber that leaves one gateway mid-message resumes on
 * another with exactly the rest of the text. (PGlite is one process's database:
 * PostgreSQL only.)
 */
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';
import { gqlAt, startRunwayProcess, type RunwayProcess } from '../support/processes.js';
import { eventually } from '../support/test-app.js';

const RUN_EVENTS = `subscription($t: ID!, $r: ID!, $after: String) { runEvents(threadId: $t, runId: $r, after: $after) {
  __typename cursor ... on RunStatusEvent { status } ... on MessageEvent { kind message { text } } ... on MessageDeltaEvent { index text } } }`;

describe('gateways A and B and a worker W on one PostgreSQL', () => {
  let db: ScratchDatabase;
  let a: RunwayProcess;
  let b: RunwayProcess;
  let w: RunwayProcess;
  beforeAll(async () => {
    db = await createScratchDatabase();
    const env = { DATABASE_URL: db.url! };
    a = await startRunwayProcess({ ...env, ROLE: 'gateway' });
    [b, w] = await Promise.all([startRunwayProcess({ ...env, ROLE: 'gateway' }), startRunwayProcess({ ...env, ROLE: 'worker' })]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a?.kill(), b?.kill(), w?.kill()]);
    await db?.drop();
  });

  function watch(gateway: RunwayProcess, variables: Record<string, unknown>) {
    const events: any[] = [];
    const client = createClient({ url: gateway.url!.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    let done = false;
    const stop = client.subscribe(
      { query: RUN_EVENTS, variables },
      {
        next: (v: any) => void events.push(v.data?.runEvents ?? v),
        error: (e) => void events.push({ error: e }),
        complete: () => void (done = true),
      },
    );
    return { events, done: () => done, dispose: async () => (stop(), await client.dispose()) };
  }

  it('a subscriber leaves A mid-message and resumes on B: the deltas make the message exactly', async () => {
    const { createAssistant } = await gqlAt(a.url!, `mutation { createAssistant(input: { model: "scripted" }) { id } }`);
    const question = `pace 20\n${'Streaming 🎉 across processes, '.repeat(4)}`;
    const { createThread } = await gqlAt(
      a.url!,
      `mutation($m: String!) { createThread(input: { messages: [{ role: USER, content: $m }] }) { id } }`,
      {
        m: question,
      },
    );
    const t = createThread.id;
    const { createRun } = await gqlAt(a.url!, `mutation($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }`, {
      t,
      a: createAssistant.id,
    });
    const r = createRun.id;
    const onA = watch(a, { t, r });
    await eventually(() => onA.events.filter((e) => e.__typename === 'MessageDeltaEvent').length >= 5, 15_000);
    await onA.dispose();
    const first = onA.events.slice();
    const onB = watch(b, { t, r, after: first.at(-1).cursor });
    await eventually(onB.done, 20_000);
    await onB.dispose();

    const all = [...first, ...onB.events];
    expect(all.filter((e) => e.error)).toEqual([]);
    let text = '';
    for (const d of all.filter((e) => e.__typename === 'MessageDeltaEvent')) {
      expect(d.index).toBe(text.length);
      text += d.text;
    }
    const completed = all.find((e) => e.kind === 'COMPLETED');
    expect(completed.message.text).toBe(`echo: ${question}`);
    expect(text).toBe(completed.message.text);
    // B carried on live: the rest came as several deltas, not only a catch-up.
    expect(onB.events.filter((e) => e.__typename === 'MessageDeltaEvent').length).toBeGreaterThan(1);
    expect(all.at(-1)).toMatchObject({ __typename: 'RunStatusEvent', status: 'COMPLETED' });
  });
});

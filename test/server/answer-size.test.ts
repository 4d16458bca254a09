/**
 * Answers larger than MAX_RESPONSE_BYTES are refused with RESPONSE_TOO_LARGE instead of
 * being built, on every transport, against real rows of real size.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { collect, eventually, startTestApp, type GraphQLResponse, type TestApp } from '../support/test-app.js';

const KB = 1024;
const MESSAGE_BYTES = 400_000;

let t: TestApp;
/** A thread of 100 messages of 400 KB each (40 MB), as a hostile tenant can leave. */
let bigThread: string;
beforeAll(async () => {
  t = await startTestApp();
  bigThread = await createThread(t);
  await t.app.database.db.execute(sql`
    insert into messages (id, thread_id, created_at, role, content)
    select 'msg_' || lpad(i::text, 26, '0'), ${bigThread}, 1, 'user', repeat(chr(97 + i % 26), ${MESSAGE_BYTES})
    from generate_series(1, 100) as i`);
});
afterAll(async () => {
  await t?.close();
});

const PAGE = `query($t: ID!, $n: Int) { thread(id: $t) { id messages(first: $n, order: ASC) { nodes { id text } } } }`;
/** Four pages (what the cost limit lets through): 160 MB of text. */
const FOUR_PAGES = `query($t: ID!) { ${[0, 1, 2, 3].map((i) => `a${i}: thread(id: $t) { messages(first: 100) { nodes { text } } }`).join(' ')} }`;

async function overHttp(
  query: string,
  variables: Record<string, unknown>,
  batch = false,
): Promise<GraphQLResponse & { status: number; bytes: number }> {
  const res = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify(batch ? [{ query, variables }] : { query, variables }),
  });
  const text = await res.text();
  const body = JSON.parse(text);
  return { status: res.status, bytes: Buffer.byteLength(text), ...(batch ? body[0] : body) };
}

function overWebsocket(query: string, variables: Record<string, unknown>): Promise<GraphQLResponse> {
  const client = t.wsClient();
  return new Promise((resolve) =>
    client.subscribe(
      { query, variables },
      { next: (value) => resolve(value as GraphQLResponse), error: (e) => resolve({ errors: e as never }), complete: () => {} },
    ),
  );
}

function expectTooLarge(answer: GraphQLResponse) {
  expect(answer.data ?? null).toBeNull();
  expect(answer.errors).toHaveLength(1);
  expect(answer.errors?.[0]?.extensions).toEqual({ code: 'RESPONSE_TOO_LARGE', maxBytes: 16 * KB * KB });
  expect(answer.errors?.[0]?.message).toMatch(/larger than 16777216 bytes/);
}

describe('an answer over MAX_RESPONSE_BYTES (16 MiB by default)', () => {
  it("is refused with RESPONSE_TOO_LARGE alone, on the fast path, yoga's path and the websocket", async () => {
    for (const send of [
      (q: string, v: Record<string, unknown>) => overHttp(q, v),
      (q: string, v: Record<string, unknown>) => overHttp(q, v, true),
      overWebsocket,
    ]) {
      const started = performance.now();
      expectTooLarge(await send(PAGE, { t: bigThread, n: 100 }));
      expectTooLarge(await send(FOUR_PAGES, { t: bigThread }));
      expect(performance.now() - started).toBeLessThan(20_000);
    }
  });

  it('counts every copy of a text asked for', async () => {
    const fields = (n: number) => Array.from({ length: n }, (_, i) => `t${i}: text`).join(' ');
    const one = `query($t: ID!) { thread(id: $t) { messages(first: 1, order: ASC) { nodes { ${fields(15)} } } } }`;
    const fits = await overHttp(one, { t: bigThread });
    expect(fits.errors).toBeUndefined();
    expect(fits.bytes).toBeGreaterThan(15 * MESSAGE_BYTES);
    // Three pages of four copies of each text (the aliases allowed): 12 x 400 KB fit, 48 do not.
    const pages = (size: number) =>
      `query($t: ID!) { ${[0, 1, 2].map((i) => `a${i}: thread(id: $t) { messages(first: ${size}, order: ASC) { nodes { ${fields(4)} } } }`).join(' ')} }`;
    expect((await overHttp(pages(1), { t: bigThread })).errors).toBeUndefined();
    expectTooLarge(await overHttp(pages(4), { t: bigThread }));
  });

  it('is served whole when it fits: 40 messages of 400 KB (16 MB) in one answer', async () => {
    const answer = await overHttp(PAGE, { t: bigThread, n: 40 });
    expect(answer.errors).toBeUndefined();
    expect(answer.status).toBe(200);
    const nodes = (answer.data as any).thread.messages.nodes;
    expect(nodes).toHaveLength(40);
    expect(nodes.every((n: any) => n.text.length === MESSAGE_BYTES)).toBe(true);
    expect(answer.bytes).toBeGreaterThan(40 * MESSAGE_BYTES);
    expect(answer.bytes).toBeLessThan(16 * KB * KB);
    expectTooLarge(await overHttp(PAGE, { t: bigThread, n: 42 }));
  });

  it('counts each event of a subscription on its own', async () => {
    // A run whose instructions are 6 MB (as stored before any size limit).
    const assistantId = await createAssistant(t);
    const threadId = await createThread(t);
    const run = await createRun(t, threadId, { assistantId });
    await t.app.database.db.execute(sql`update runs set instructions = repeat('i', 6000000) where id = ${run.id}`);
    const client = t.wsClient();
    const copies = (n: number) => Array.from({ length: n }, (_, i) => `i${i}: instructions`).join(' ');
    const query = (n: number) => `subscription($r: ID!) { runStatusChanged(runId: $r) { status run { id ${copies(n)} } } }`;
    const twice = collect(client, query(2), { r: run.id });
    const thrice = collect(client, query(3), { r: run.id });
    await eventually(() => twice.events.length === 1 && thrice.events.length === 1);
    await t.app.engine.transition(run.id, 'cancelled');
    await Promise.all([twice.done, thrice.done]);
    // Two copies (12 MB) fit in each event, however many came before.
    expect(twice.events.map((e) => e.errors ?? e.data!.runStatusChanged.status)).toEqual(['QUEUED', 'CANCELLED']);
    expect(twice.events.every((e) => e.data!.runStatusChanged.run.i1.length === 6_000_000)).toBe(true);
    // Three (18 MB) fit in none.
    expect(thrice.events).toHaveLength(2);
    for (const event of thrice.events) expectTooLarge(event);
  });
});

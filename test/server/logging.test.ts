/** Structured logs: a request id on every request, and no secret (nor a client's data) in any line. */
import { spawnSync } from 'node:child_process';
import fs, { mkdtempSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger, LOG_BATCH_MS, stdoutDestination } from '../../src/log.js';
import { createAssistant, createRun, createThread } from '../support/fixtures.js';
import { eventually, startTestApp, type TestApp } from '../support/test-app.js';

const lines: any[] = [];
const sink = new Writable({
  write(chunk, _encoding, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
    done();
  },
});
const logger = createLogger({ level: 'info', destination: sink });

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ logger, worker: true });
});
afterAll(async () => {
  await t?.close();
});

it('gives every request an id, echoes it, and logs one line with it', async () => {
  const mine = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'req-42', authorization: 'Bearer sk-very-secret' },
    body: JSON.stringify({ query: '{ __typename }' }),
  });
  expect(mine.headers.get('x-request-id')).toBe('req-42');
  const generated = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"query":"{ __typename }"}',
  });
  const id = generated.headers.get('x-request-id');
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  await new Promise((r) => setTimeout(r, 50));
  expect(lines.find((l) => l.requestId === 'req-42')).toMatchObject({ msg: 'request', method: 'POST', path: '/graphql', status: 200 });
  expect(lines.find((l) => l.requestId === id)).toBeDefined();
});

it('redacts keys and authorization wherever they appear in a line', () => {
  logger.info(
    {
      headers: { authorization: 'Bearer sk-very-secret' },
      connectionParams: { authorization: 'sk-very-secret' },
      apiKey: 'sk-very-secret',
    },
    'probe',
  );
  const probe = lines.find((l) => l.msg === 'probe');
  expect(probe.headers.authorization).toBe('[redacted]');
  expect(JSON.stringify(lines)).not.toContain('sk-very-secret');
});

it('takes a client hanging up mid-body in its stride: no error line, and the next request is served', async () => {
  const { port } = new URL(t.url);
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write('POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"query":');
        setTimeout(() => (socket.destroy(), resolve()), 20);
      });
    });
  }
  expect(await t.ok('{ __typename }')).toEqual({ __typename: 'Query' });
  expect(lines.filter((l) => l.level >= 50).map((l) => [l.msg, l.err?.message])).toEqual([]);
});

const CREATE_MESSAGE = 'mutation($t: ID!, $i: CreateMessageInput!) { createMessage(threadId: $t, input: $i) { id } }';

describe('a failing statement', () => {
  /** A database that refuses some messages: the statement fails in PostgreSQL itself. */
  async function refuseMessages(role: string, work: () => Promise<void>) {
    const db = t.app.database.db;
    await db.execute(
      sql.raw(`create function refuse_secret() returns trigger language plpgsql as $$
      begin if new.role = '${role}' and new.content like '%tell-no-one%' then raise exception 'refused by a trigger'; end if; return new; end $$`),
    );
    await db.execute(sql.raw(`create trigger refuse_secret before insert on messages for each row execute function refuse_secret()`));
    try {
      await work();
    } finally {
      await db.execute(sql.raw('drop trigger refuse_secret on messages'));
      await db.execute(sql.raw('drop function refuse_secret()'));
    }
  }

  it('is logged by the gateway without the values it carried (message text among them)', async () => {
    const threadId = await createThread(t);
    await refuseMessages('user', async () => {
      const secret = 'my secret tell-no-one 1234';
      lines.length = 0;
      const answer = await t.gql(CREATE_MESSAGE, {
        t: threadId,
        i: { role: 'USER', content: secret, metadata: { also: 'tell-no-one-either' } },
      });
      expect(answer.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      await eventually(() => lines.some((l) => l.level >= 50));
      const logged = JSON.stringify(lines);
      expect(logged).toContain('insert into \\"messages\\"'); // the statement, to find the bug by
      expect(logged).toContain('refused by a trigger'); // and why it failed
      expect(logged).not.toContain('tell-no-one');
      expect(logged).not.toContain(threadId);
    });
  });

  it("is logged by the worker without the values it carried (the model's answer among them)", async () => {
    const threadId = await createThread(t, 'my secret tell-no-one 5678');
    await refuseMessages('assistant', async () => {
      lines.length = 0;
      await createRun(t, threadId, { assistantId: await createAssistant(t) });
      // The scripted model echoes the message; writing its answer fails.
      await eventually(() => lines.some((l) => l.err), 10_000);
      const logged = JSON.stringify(lines);
      expect(logged).toContain('refused by a trigger');
      expect(logged).not.toContain('tell-no-one');
    });
  });
});

describe('standard output', () => {
  it(`gets the lines logged within ${LOG_BATCH_MS} ms in one write, in order`, async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'runway-log-')), 'out.log');
    const log = createLogger({ destination: stdoutDestination(openSync(file, 'w')) });
    const writes = vi.spyOn(fs, 'writeSync');
    // The batch's clock is the test's: lines logged over several turns of the loop, then its time is up.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      for (let i = 0; i < 100; i++) {
        log.info({ i }, 'request');
        if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      vi.advanceTimersByTime(LOG_BATCH_MS - 1);
      expect(writes).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      expect(writes).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
      writes.mockRestore();
    }
    await eventually(() => readFileSync(file, 'utf8').split('\n').filter(Boolean).length === 100);
    const written = readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line).i);
    expect(written).toEqual([...Array(100).keys()]);
  });

  it('loses no line when the process exits in the turn that logged it', () => {
    const log = new URL('../../src/log.ts', import.meta.url).pathname;
    const script = `import(${JSON.stringify(log)}).then(({ createLogger, stdoutDestination }) => {
      const logger = createLogger({ destination: stdoutDestination() });
      for (let i = 0; i < 1000; i++) logger.info({ i }, 'line');
      process.exit(0);
    });`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(child.status).toBe(0);
    const written = child.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line).i);
    expect(written).toEqual([...Array(1000).keys()]);
  });
});

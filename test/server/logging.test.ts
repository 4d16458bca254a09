/** Structured logs: a request id on every request, and no secret in any line. */
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

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
  t = await startTestApp({ logger });
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
  const generated = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' });
  const id = generated.headers.get('x-request-id');
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  await new Promise((r) => setTimeout(r, 50));
  expect(lines.find((l) => l.requestId === 'req-42')).toMatchObject({ msg: 'request', method: 'POST', path: '/graphql', status: 200 });
  expect(lines.find((l) => l.requestId === id)).toBeDefined();
});

it('redacts keys and authorization wherever they appear in a line', () => {
  logger.info({ headers: { authorization: 'Bearer sk-very-secret' }, connectionParams: { authorization: 'sk-very-secret' }, apiKey: 'sk-very-secret' }, 'probe');
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

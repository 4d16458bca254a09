/**
 * GraphQL-over-HTTP conformance: graphql-http's server audits against the real server on
 * a real port, with API keys required (as in production: the audits send a valid key).
 * Every MUST audit passes, and so does every SHOULD audit.
 */
import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ apiKeys: new Map([[KEY, 'audit']]) });
});
afterAll(async () => {
  await t?.close();
});

const KEY = 'graphql-http-audit-key-0123456789';
const withKey: typeof fetch = (input, init) => {
  const headers = new Headers(init?.headers);
  headers.set('authorization', `Bearer ${KEY}`);
  return fetch(input, { ...init, headers });
};
const audits = serverAudits({ url: () => t.url, fetchFn: withKey });

describe('graphql-http server audits', () => {
  for (const audit of audits.filter((a) => a.name.startsWith('MUST'))) {
    it(audit.name, async () => {
      const result = await audit.fn();
      expect(result.status, 'reason' in result ? String(result.reason) : '').toBe('ok');
    });
  }

  it('passes the SHOULD audits too (all 23 today: keep it so)', async () => {
    const should = audits.filter((a) => a.name.startsWith('SHOULD'));
    const results = await Promise.all(should.map((a) => a.fn()));
    const failed = results.filter((r) => r.status !== 'ok').map((r) => `${r.name}: ${'reason' in r ? r.reason : ''}`);
    console.log(`graphql-http SHOULD audits passed: ${results.length - failed.length} of ${results.length}`);
    expect(failed).toEqual([]);
    expect(results).toHaveLength(23);
  });
});

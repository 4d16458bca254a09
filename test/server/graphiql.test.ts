/**
 * GraphiQL over real HTTP: a small page, revalidated on every visit, that opens with the
 * README's first run as tabs; its files named by their content, compressed, and cached
 * for good. (In a browser: test/browser/graphiql.test.ts.)
 */
import { request } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { parse, validate } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../../src/graphql/schema.js';
import { accepted } from '../../src/server/graphiql.js';
import { GRAPHIQL_TABS } from '../../src/server/graphiql-tabs.js';
import { startTestApp, until, type TestApp } from '../support/test-app.js';

let t: TestApp;
let origin: string;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
  origin = new URL(t.url).origin;
});
afterAll(async () => {
  await t?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The bytes as they came over the wire (compressed, if they were). */
  wire: Buffer;
  /** The bytes once decoded. */
  body: Buffer;
}

/** A GET as a browser sends it, reading the bytes on the wire (fetch would decode them out of sight). */
function get(path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    request(`${origin}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const wire = Buffer.concat(chunks);
        const encoding = res.headers['content-encoding'];
        const body = encoding === 'br' ? brotliDecompressSync(wire) : encoding === 'gzip' ? gunzipSync(wire) : wire;
        resolve({ status: res.statusCode!, headers: res.headers, wire, body });
      });
    })
      .on('error', reject)
      .end();
  });
}

const BROWSER = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8', 'accept-encoding': 'gzip, deflate, br, zstd' };

/** The files the page names: its script, styles, icon and the editor's workers. */
function filesOf(page: string): string[] {
  return [...new Set([...page.matchAll(/"(\/graphiql\/[^"]+)"/g)].map((m) => m[1]!))];
}

describe('the page', () => {
  it('is a few KB, compressed, revalidated on every visit, and opens with the first run as tabs', async () => {
    const page = await get('/graphql', BROWSER);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-encoding']).toBe('br');
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.headers['vary']).toBe('accept-encoding');
    expect(Number(page.headers['content-length'])).toBe(page.wire.length);
    expect(page.body.length).toBeLessThan(20_000);
    const html = page.body.toString();
    expect(html).toContain('<title>Runway</title>');
    const options = JSON.parse(/renderYogaGraphiQL\([^,]+, (.*)\);\n/.exec(html)![1]!) as Record<string, any>;
    expect(options.subscriptionsProtocol).toBe('WS');
    expect(options.defaultTabs).toEqual(GRAPHIQL_TABS);
    expect(html).not.toContain("Welcome to Yoga's GraphiQL");
  });

  it('names its files by content and serves each compressed, cached for a year, 9 MB in under 2.5 MB', async () => {
    const html = (await get('/graphql', BROWSER)).body.toString();
    const files = filesOf(html);
    expect(files).toHaveLength(6); // script, styles, icon, three workers
    let wire = 0;
    let plain = 0;
    for (const path of files) {
      expect(path).toMatch(/^\/graphiql\/[\w.-]+\.[\w-]{16}\.(js|css|ico)$/);
      const file = await get(path, { 'accept-encoding': 'gzip, deflate, br' });
      expect(file.status).toBe(200);
      expect(file.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(file.headers['content-encoding']).toBe('br');
      expect(file.headers['content-type']).toMatch(
        path.endsWith('.css') ? /^text\/css/ : path.endsWith('.ico') ? /^image\/x-icon/ : /^text\/javascript/,
      );
      wire += file.wire.length;
      plain += file.body.length;
    }
    expect(plain).toBeGreaterThan(8_000_000);
    expect(wire).toBeLessThan(2_500_000);
  });

  it('is gzip for a client without brotli, and plain for one that takes neither', async () => {
    const script = filesOf((await get('/graphql', BROWSER)).body.toString()).find(
      (path) => path.startsWith('/graphiql/graphiql.') && path.endsWith('.js'),
    )!;
    const gzipped = await get(script, { 'accept-encoding': 'gzip' });
    const plain = await get(script, {});
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(Number(plain.headers['content-length'])).toBe(plain.body.length);
    expect(gzipped.body.equals(plain.body)).toBe(true);
    expect(gzipped.wire.length).toBeLessThan(plain.body.length / 3);
  });

  it('answers 404 for a file it does not have', async () => {
    expect((await get('/graphiql/graphiql.AAAAAAAAAAAAAAAA.js', {})).status).toBe(404);
  });

  it('leaves GraphQL requests to GraphQL', async () => {
    expect(await t.ok('{ __typename }')).toEqual({ __typename: 'Query' });
  });
});

describe('accept-encoding', () => {
  it('prefers brotli, then gzip, and honours q=0', () => {
    expect(accepted('gzip, deflate, br')).toBe('br');
    expect(accepted('gzip')).toBe('gzip');
    expect(accepted('br;q=0, gzip;q=0.5')).toBe('gzip');
    expect(accepted('*')).toBe('br');
    expect(accepted('identity')).toBe('identity');
    expect(accepted(undefined)).toBe('identity');
  });
});

describe('the tabs', () => {
  it('are valid against the schema', () => {
    for (const tab of GRAPHIQL_TABS) expect(validate(schema, parse(tab.query))).toEqual([]);
  });

  it('run the first run: an assistant and a thread, a run that needs a tool, its output, the answer', async () => {
    const [start, run] = GRAPHIQL_TABS as [(typeof GRAPHIQL_TABS)[0], (typeof GRAPHIQL_TABS)[0]];
    const exec = async (query: string, operationName: string | undefined, variables: Record<string, unknown> = {}) => {
      const res = await fetch(t.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, operationName, variables }),
      });
      const body = (await res.json()) as { data?: any; errors?: unknown };
      expect(body.errors).toBeUndefined();
      return body.data;
    };
    const started = await exec(start.query, undefined);
    // The ids a person pastes into the run tab's variables, over the placeholders shown.
    const shown = JSON.parse(run.variables!) as Record<string, string>;
    const vars: Record<string, string> = { ...shown, assistantId: started.createAssistant.id, threadId: started.createThread.id };
    vars.runId = (await exec(run.query, 'CreateRun', vars)).createRun.id;
    const needs = await until(async () => {
      const read = await exec(run.query, 'WhatItNeeds', vars);
      return read.run.status === 'REQUIRES_ACTION' ? read : undefined;
    });
    vars.callId = needs.run.requiredAction.submitToolOutputs.toolCalls[0].id;
    expect((await exec(run.query, 'SubmitToolOutputs', vars)).submitToolOutputs.status).toBe('QUEUED');
    await until(async () => ((await exec(run.query, 'ReadAnswer', vars)).runs.nodes[0].status === 'COMPLETED' ? true : undefined));
    // Read again once it completed: the operation's two fields may resolve on two connections.
    const answer = await exec(run.query, 'ReadAnswer', vars);
    expect(answer.runs.nodes[0].usage.totalTokens).toBeGreaterThan(0);
    expect(answer.thread.messages.nodes.at(-1)).toMatchObject({ role: 'ASSISTANT', text: 'get_weather: 22°C and sunny' });
  });
});

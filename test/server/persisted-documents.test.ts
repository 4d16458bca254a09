/**
 * Persisted documents (PERSISTED_DOCUMENTS): a manifest of hash -> document, as GraphQL
 * Codegen's client-preset writes it, over HTTP (the fast path and yoga's own path) and
 * graphql-ws; with ALLOW_ARBITRARY_OPERATIONS=false, an allowlist.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPersistedDocuments } from '../../src/server/persisted-documents.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const KEY = 'persisted-documents-key-0123';
const ASSISTANT = 'query Assistant($id: ID!) { assistant(id: $id) { id name } }';
const CREATE_ASSISTANT = 'mutation Create($name: String!) { createAssistant(input: { model: "scripted", name: $name }) { name } }';
const RUN_STATUS = 'subscription RunStatus($runId: ID!) { runStatusChanged(runId: $runId) { status } }';
const hash = (document: string) => createHash('sha256').update(document).digest('hex');
const [assistantHash, createHash_, runStatusHash] = [ASSISTANT, CREATE_ASSISTANT, RUN_STATUS].map(hash) as [string, string, string];

const dir = mkdtempSync(join(tmpdir(), 'runway-persisted-'));
const manifest = join(dir, 'persisted-documents.json');
writeFileSync(manifest, JSON.stringify({ [assistantHash]: ASSISTANT, [createHash_]: CREATE_ASSISTANT, [runStatusHash]: RUN_STATUS }));

let trusted: TestApp;
let mixed: TestApp;
let assistantId: string;
beforeAll(async () => {
  const apiKeys = new Map([[KEY, 'persisted']]);
  [trusted, mixed] = await Promise.all([
    startTestApp({ apiKeys, apiKey: KEY, persistedDocuments: manifest, allowArbitraryOperations: false, worker: true }),
    startTestApp({ apiKeys, apiKey: KEY, persistedDocuments: manifest }),
  ]);
  const made = await post(trusted, { documentId: createHash_, variables: { name: 'Trusted' } });
  expect(await made.json()).toEqual({ data: { createAssistant: { name: 'Trusted' } } });
  assistantId = await firstAssistant(trusted);
});
afterAll(async () => {
  await Promise.all([trusted?.close(), mixed?.close()]);
});

function post(t: TestApp, body: unknown) {
  return fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify(body),
  });
}

/** The id of the app's first assistant, from REST (GraphQL there runs only the manifest). */
async function firstAssistant(t: TestApp): Promise<string> {
  const res = await fetch(`${t.restUrl}/assistants`, { headers: { authorization: `Bearer ${KEY}` } });
  return ((await res.json()) as { data: { id: string }[] }).data[0]!.id;
}

describe('with ALLOW_ARBITRARY_OPERATIONS=false (an allowlist)', () => {
  it('runs a persisted query named by documentId, or by extensions.persistedQuery.sha256Hash, over POST', async () => {
    const byId = await post(trusted, { documentId: assistantHash, variables: { id: assistantId } });
    expect(byId.status).toBe(200);
    expect(await byId.json()).toEqual({ data: { assistant: { id: assistantId, name: 'Trusted' } } });
    const apollo = await post(trusted, {
      variables: { id: assistantId },
      extensions: { persistedQuery: { version: 1, sha256Hash: assistantHash } },
    });
    expect(await apollo.json()).toEqual({ data: { assistant: { id: assistantId, name: 'Trusted' } } });
  });

  it('runs a persisted query over GET (documentId in the URL)', async () => {
    const url = `${trusted.url}?documentId=${assistantHash}&variables=${encodeURIComponent(JSON.stringify({ id: assistantId }))}`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${KEY}` } });
    expect(await res.json()).toEqual({ data: { assistant: { id: assistantId, name: 'Trusted' } } });
  });

  it('refuses a query text with PERSISTED_DOCUMENT_REQUIRED (400), even one in the manifest; in a batch, each item', async () => {
    const single = await post(trusted, { query: ASSISTANT, variables: { id: assistantId } });
    expect(single.status).toBe(400);
    expect((await single.json()).errors).toEqual([expect.objectContaining({ extensions: { code: 'PERSISTED_DOCUMENT_REQUIRED' } })]);
    // A batch's answer is a list, one result per item (yoga answers it 200).
    const batch = await post(trusted, [{ query: '{ __typename }' }, { documentId: assistantHash, variables: { id: assistantId } }]);
    expect(await batch.json()).toEqual([
      { errors: [expect.objectContaining({ extensions: { code: 'PERSISTED_DOCUMENT_REQUIRED' } })] },
      { data: { assistant: { id: assistantId, name: 'Trusted' } } },
    ]);
  });

  it('refuses an unknown id with PERSISTED_DOCUMENT_NOT_FOUND, naming it', async () => {
    const res = await post(trusted, { documentId: hash('{ __typename }') });
    expect(res.status).toBe(400);
    expect((await res.json()).errors[0].extensions).toEqual({ code: 'PERSISTED_DOCUMENT_NOT_FOUND', documentId: hash('{ __typename }') });
    const none = await post(trusted, { variables: {} });
    expect((await none.json()).errors[0].extensions).toEqual({ code: 'PERSISTED_DOCUMENT_REQUIRED' });
  });

  it('over graphql-ws: runs a persisted subscription (query "" and documentId), refuses a query text', async () => {
    const run = await fetch(`${trusted.restUrl}/threads/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ assistant_id: assistantId, thread: { messages: [{ role: 'user', content: 'sleep 200' }] } }),
    });
    const runId = ((await run.json()) as { id: string }).id;
    const client = trusted.wsClient();
    // graphql-ws requires a query string, and passes the payload's other keys on.
    const events: { data?: { runStatusChanged: { status: string } }; errors?: unknown }[] = [];
    await new Promise<void>((resolve, reject) =>
      client.subscribe({ query: '', variables: { runId }, documentId: runStatusHash } as never, {
        next: (value) => void events.push(value as never),
        error: reject,
        complete: resolve,
      }),
    );
    expect(events.at(-1)?.data?.runStatusChanged.status).toBe('COMPLETED');

    const refused = await new Promise<unknown>((resolve) =>
      client.subscribe({ query: RUN_STATUS, variables: { runId } }, { next: () => {}, error: resolve, complete: () => resolve(undefined) }),
    );
    expect(refused).toEqual([expect.objectContaining({ extensions: { code: 'PERSISTED_DOCUMENT_REQUIRED' } })]);
  });
});

describe('with arbitrary operations allowed (the default)', () => {
  it('runs query texts and persisted ids alike; an unknown id is still PERSISTED_DOCUMENT_NOT_FOUND', async () => {
    const text = await post(mixed, { query: CREATE_ASSISTANT, variables: { name: 'Text' } });
    expect((await text.json()).data).toEqual({ createAssistant: { name: 'Text' } });
    const id = await firstAssistant(mixed);
    const byId = await post(mixed, { documentId: assistantHash, variables: { id } });
    expect((await byId.json()).data).toEqual({ assistant: { id, name: 'Text' } });
    const unknown = await post(mixed, { documentId: 'nope' });
    expect((await unknown.json()).errors[0].extensions.code).toBe('PERSISTED_DOCUMENT_NOT_FOUND');
  });
});

describe('the manifest', () => {
  it('must be a JSON object of id -> document text: anything else stops the start with the reason', () => {
    const bad = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return () => loadPersistedDocuments(path);
    };
    expect(bad('array.json', '[]')).toThrow(/must be a JSON object/);
    expect(bad('number.json', '{"h": 1}')).toThrow(/document of h is not a string/);
    expect(bad('broken.json', '{')).toThrow(/cannot read .* as JSON/);
    expect(loadPersistedDocuments(manifest).get(assistantHash)).toBe(ASSISTANT);
  });
});

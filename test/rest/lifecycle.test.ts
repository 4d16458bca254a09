/**
 * The rest of the Assistants API's lifecycle over /v1, through the official client: lists
 * of assistants, modifying and deleting assistants, threads and messages, one message
 * read, and a thread's messages by run. The rules are the use cases' (GraphQL's specs hold
 * them in depth, test/graphql/): here, that each call reaches them and answers as the API
 * does, every answer held to OpenAI's OpenAPI description.
 */
import OpenAI, { BadRequestError, NotFoundError } from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { contractFetch, type ContractFetch } from '../support/openapi.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const KEY = 'rest-lifecycle-key-a-0123456789';
const OTHER_KEY = 'rest-lifecycle-key-b-0123456789';

let t: TestApp;
let contract: ContractFetch;
let openai: OpenAI;
let other: OpenAI;

beforeAll(async () => {
  t = await startTestApp({
    worker: true,
    apiKeys: new Map([
      [KEY, 'projectA'],
      [OTHER_KEY, 'projectB'],
    ]),
    apiKey: KEY,
  });
  contract = contractFetch();
  openai = new OpenAI({ apiKey: KEY, baseURL: t.restUrl, fetch: contract.fetch, maxRetries: 0 });
  other = new OpenAI({ apiKey: OTHER_KEY, baseURL: t.restUrl, fetch: contract.fetch, maxRetries: 0 });
});
afterAll(async () => {
  await t?.close();
});
afterEach(() => {
  expect(contract.violations.splice(0)).toEqual([]);
});

describe('assistants', () => {
  it('are listed newest first, paged by after and before, and only those of the caller’s project', async () => {
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await openai.beta.assistants.create({ model: 'scripted', name: `a${i}` })).id);
    await other.beta.assistants.create({ model: 'scripted', name: 'not yours' });
    const first = await openai.beta.assistants.list({ limit: 2 });
    expect(first.data.map((a) => a.id)).toEqual([made[4], made[3]]);
    expect(first.has_more).toBe(true);
    const next = await openai.beta.assistants.list({ limit: 2, after: made[3] });
    expect(next.data.map((a) => a.id)).toEqual([made[2], made[1]]);
    const back = await openai.beta.assistants.list({ limit: 2, before: made[1] });
    expect(back.data.map((a) => a.id)).toEqual([made[3], made[2]]);
    const all: string[] = [];
    for await (const a of openai.beta.assistants.list({ order: 'asc', limit: 2 })) all.push(a.id);
    expect(all).toEqual(made);
  });

  it('are modified (fields given change, the others stay) and deleted; a deleted one is not found', async () => {
    const created = await openai.beta.assistants.create({
      model: 'scripted',
      name: 'Old',
      instructions: 'Be brief.',
      metadata: { a: '1' },
    });
    const updated = await openai.beta.assistants.update(created.id, { name: 'New', metadata: { b: '2' } });
    expect(updated).toMatchObject({ id: created.id, name: 'New', instructions: 'Be brief.', metadata: { b: '2' } });
    expect(await openai.beta.assistants.retrieve(created.id)).toEqual(updated);
    await expect(openai.beta.assistants.update(created.id, { metadata: { k: 'x'.repeat(513) } })).rejects.toBeInstanceOf(BadRequestError);
    await expect(other.beta.assistants.delete(created.id)).rejects.toBeInstanceOf(NotFoundError);
    expect(await openai.beta.assistants.delete(created.id)).toEqual({ id: created.id, object: 'assistant.deleted', deleted: true });
    await expect(openai.beta.assistants.retrieve(created.id)).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('threads and messages', () => {
  it('a thread’s metadata is modified; the thread is deleted with everything in it', async () => {
    const assistant = await openai.beta.assistants.create({ model: 'scripted' });
    const thread = await openai.beta.threads.create({ messages: [{ role: 'user', content: 'Hello' }], metadata: { a: '1' } });
    expect(await openai.beta.threads.update(thread.id, { metadata: { b: '2' } })).toMatchObject({ id: thread.id, metadata: { b: '2' } });
    const run = await openai.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
    expect(run.status).toBe('completed');
    await expect(other.beta.threads.delete(thread.id)).rejects.toBeInstanceOf(NotFoundError);
    expect(await openai.beta.threads.delete(thread.id)).toEqual({ id: thread.id, object: 'thread.deleted', deleted: true });
    await expect(openai.beta.threads.retrieve(thread.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(openai.beta.threads.runs.retrieve(run.id, { thread_id: thread.id })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('a thread with an active run is not deleted: the client is told to cancel it first', async () => {
    const assistant = await openai.beta.assistants.create({ model: 'scripted' });
    const thread = await openai.beta.threads.create({ messages: [{ role: 'user', content: 'pace 200\nA slow answer for a while' }] });
    const run = await openai.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    await expect(openai.beta.threads.delete(thread.id)).rejects.toBeInstanceOf(BadRequestError);
    await openai.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
  });

  it('a message is read, its metadata modified, and it is deleted; a thread’s messages are listed by run', async () => {
    const assistant = await openai.beta.assistants.create({ model: 'scripted' });
    const thread = await openai.beta.threads.create({ messages: [{ role: 'user', content: 'First' }] });
    const run = await openai.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
    const ofRun = await openai.beta.threads.messages.list(thread.id, { run_id: run.id });
    expect(ofRun.data.map((m) => [m.role, m.run_id])).toEqual([['assistant', run.id]]);
    const all = await openai.beta.threads.messages.list(thread.id, { order: 'asc' });
    expect(all.data.map((m) => m.role)).toEqual(['user', 'assistant']);

    const [question] = all.data;
    expect(await openai.beta.threads.messages.retrieve(question!.id, { thread_id: thread.id })).toEqual(question);
    const modified = await openai.beta.threads.messages.update(question!.id, { thread_id: thread.id, metadata: { seen: 'yes' } });
    expect(modified).toMatchObject({ id: question!.id, metadata: { seen: 'yes' } });
    await expect(other.beta.threads.messages.retrieve(question!.id, { thread_id: thread.id })).rejects.toBeInstanceOf(NotFoundError);
    expect(await openai.beta.threads.messages.delete(question!.id, { thread_id: thread.id })).toEqual({
      id: question!.id,
      object: 'thread.message.deleted',
      deleted: true,
    });
    const left = await openai.beta.threads.messages.list(thread.id);
    expect(left.data.map((m) => m.role)).toEqual(['assistant']);
  });
});

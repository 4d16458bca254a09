/**
 * Row reads (src/db/row-reads.ts): the hottest reads skip drizzle's per-row mapping, so
 * what they answer must be what drizzle's select() answers, column for column, on both
 * drivers.
 */
import { eq, getTableColumns, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import { joinedRowRead, rowRead } from '../../src/db/row-reads.js';
import { assistants, runs, threads } from '../../src/db/schema.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/database.js';

let scratch: ScratchDatabase;
let database: Database;
const statements: string[] = [];
beforeAll(async () => {
  scratch = await createScratchDatabase();
  database = await openDatabase({ url: scratch.url, pgliteDir: 'memory://', onQuery: (text) => statements.push(text) });
  await migrate(database);
  const { db } = database;
  await db.insert(assistants).values({ id: 'asst_1', projectId: 'p', createdAt: 1, model: 'scripted' });
  // A thread has one active run at a time: one thread each.
  await db.insert(threads).values([
    { id: 'thread_1', projectId: 'p', createdAt: 1, runCount: 1 },
    { id: 'thread_2', projectId: 'p', createdAt: 1, runCount: 1 },
    { id: 'thread_empty', projectId: 'p', createdAt: 1, runCount: 0 },
  ]);
  const base = { projectId: 'p', threadId: 'thread_1', assistantId: 'asst_1', model: 'scripted', instructions: '' };
  await db.insert(runs).values([
    // Every kind of column filled: bigint seconds past 2^31, JSON with an emoji, a double, a uuid, a timestamp.
    {
      ...base,
      id: 'run_full',
      createdAt: 4_102_444_800,
      threadSeq: 1,
      status: 'in_progress',
      previousStatus: 'queued',
      version: 2,
      requiredAction: { type: 'submit_tool_outputs', submit_tool_outputs: { tool_calls: [] } },
      expiresAt: 4_102_445_400,
      startedAt: 4_102_444_801,
      additionalInstructions: 'Say 🐙',
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      metadata: { k: 'v 🎉' },
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      temperature: 0.25,
      topP: 0.5,
      maxPromptTokens: 1000,
      truncationStrategy: { type: 'last_messages', last_messages: 3 },
      toolChoice: 'auto',
      parallelToolCalls: false,
      responseFormat: { type: 'json_object' },
      workerId: 'w1',
      leaseToken: '6f1c3a52-4a4e-4c0b-9d3e-2f1b0c7a9e11',
      leaseExpiresAt: sql`'2100-01-01T00:00:05.123456Z'`,
    },
    // And as few as can be: nulls stay null.
    { ...base, id: 'run_bare', threadId: 'thread_2', createdAt: 1, threadSeq: 1, status: 'queued' },
  ] as (typeof runs.$inferInsert)[]);
});
afterAll(async () => {
  await database?.close();
  await scratch?.drop();
});

const byId = rowRead(runs, (db) =>
  db
    .select()
    .from(runs)
    .where(eq(runs.id, sql.placeholder('id'))),
);

describe('a row read', () => {
  it.each(['run_full', 'run_bare'])('answers %s as drizzle select() does, every column decoded alike', async (id) => {
    const { db } = database;
    const expected = await db.select().from(runs).where(eq(runs.id, id));
    const read = await byId(db, { id });
    expect(read).toEqual(expected);
    expect(Object.keys(read[0]!)).toEqual(Object.keys(expected[0]!));
    expect(typeof read[0]!.createdAt).toBe('number');
  });

  it('answers no row for an id that matches none', async () => {
    expect(await byId(database.db, { id: 'run_missing' })).toEqual([]);
  });

  it('is seen by the statement log, as drizzle statements are', async () => {
    statements.length = 0;
    await byId(database.db, { id: 'run_bare' });
    expect(statements).toEqual([expect.stringMatching(/^select .* from "runs" where "runs"\."id" = \$1$/)]);
  });

  it('refuses a database it cannot read raw rows from, rather than answering wrong rows', async () => {
    await expect(database.db.transaction((tx) => byId(tx, { id: 'run_bare' }))).rejects.toThrow(/outside any transaction/);
  });
});

/** Each thread's runs, the thread's row with no run where it has none (a left join). */
const joinedRuns = (db: Database['db']) =>
  db
    .select({ run: getTableColumns(runs) })
    .from(threads)
    .leftJoin(runs, eq(runs.threadId, threads.id))
    .where(eq(threads.id, sql.placeholder('threadId')));
const runsOfThread = joinedRowRead(runs, joinedRuns);

describe('a joined row read', () => {
  it.each(['thread_1', 'thread_empty'])(
    'answers the joined rows of %s as drizzle does, null where the join found none',
    async (threadId) => {
      const { db } = database;
      const expected = (await joinedRuns(db).execute({ threadId })).map((row) => row.run);
      const read = await runsOfThread(db, { threadId });
      expect(read).toEqual(expected);
      expect(read).toHaveLength(1);
      expect(read[0] === null).toBe(threadId === 'thread_empty');
    },
  );
});

/**
 * The benchmark's data set: `threads` threads of `runsPerThread` runs each, every run with
 * a user message, an assistant message and a MESSAGE_CREATION step, all in project
 * `bench`, written in batches through postgres.js. Ids are prefixed ULIDs, as Runway makes.
 */
import postgres from 'postgres';
import { monotonicFactory } from 'ulid';

export const BENCH_PROJECT = 'bench';

export interface Seeded {
  threadIds: string[];
  /** [threadId, runId] pairs. */
  runs: [string, string][];
}

export async function seed(sql: postgres.Sql, threads: number, runsPerThread: number, log = (_: string) => {}): Promise<Seeded> {
  const ulid = monotonicFactory();
  const now = Math.floor(Date.now() / 1000) - threads * runsPerThread;
  const assistantId = `asst_${ulid()}`;
  await sql`insert into assistants (id, project_id, created_at, model, instructions, tools, metadata)
    values (${assistantId}, ${BENCH_PROJECT}, ${now}, 'scripted', 'Be brief.', '[]', '{}')`;
  const seeded: Seeded = { threadIds: [], runs: [] };
  const BATCH = 2000;
  let runRows: Record<string, unknown>[] = [];
  let messageRows: Record<string, unknown>[] = [];
  let stepRows: Record<string, unknown>[] = [];
  let eventRows: Record<string, unknown>[] = [];
  const flush = async () => {
    if (runRows.length === 0) return;
    await sql`insert into runs ${sql(runRows as never)}`;
    await sql`insert into run_events ${sql(eventRows as never)}`;
    await sql`insert into messages ${sql(messageRows as never)}`;
    await sql`insert into run_steps ${sql(stepRows as never)}`;
    runRows = [];
    messageRows = [];
    stepRows = [];
    eventRows = [];
  };
  for (let t = 0; t < threads; t++) {
    const threadId = `thread_${ulid()}`;
    seeded.threadIds.push(threadId);
    await sql`insert into threads (id, project_id, created_at, metadata, run_count)
      values (${threadId}, ${BENCH_PROJECT}, ${now}, '{"seeded":"yes"}', ${runsPerThread})`;
    for (let r = 0; r < runsPerThread; r++) {
      const runId = `run_${ulid()}`;
      const at = now + t * runsPerThread + r;
      seeded.runs.push([threadId, runId]);
      const usage = { promptTokens: 12, completionTokens: 7, totalTokens: 19 };
      runRows.push({
        id: runId, project_id: BENCH_PROJECT, thread_id: threadId, assistant_id: assistantId, created_at: at,
        thread_seq: r + 1, status: 'completed', previous_status: 'in_progress', version: 3,
        started_at: at, completed_at: at + 1, model: 'scripted', instructions: 'Be brief.',
        tools: sql.json([]), metadata: sql.json({ n: String(r) }), usage: sql.json(usage),
        temperature: 1, top_p: 1, truncation_strategy: sql.json({ type: 'auto', lastMessages: null }),
        tool_choice: sql.json({ mode: 'auto' }), parallel_tool_calls: true, response_format: sql.json({ type: 'auto' }),
      });
      for (const [version, from, to] of [[1, null, 'queued'], [2, 'queued', 'in_progress'], [3, 'in_progress', 'completed']] as const) {
        eventRows.push({ run_id: runId, version, thread_id: threadId, thread_seq: r + 1, from_status: from, to_status: to, at });
      }
      const answerId = `msg_${ulid()}`;
      messageRows.push(
        { id: `msg_${ulid()}`, thread_id: threadId, created_at: at, role: 'user', content: `question ${r}`, metadata: sql.json({}) },
        { id: answerId, thread_id: threadId, created_at: at + 1, role: 'assistant', content: `answer ${r}`, run_id: runId, assistant_id: assistantId, metadata: sql.json({}) },
      );
      stepRows.push({
        id: `step_${ulid()}`, run_id: runId, thread_id: threadId, assistant_id: assistantId, created_at: at + 1,
        type: 'message_creation', status: 'completed', completed_at: at + 1,
        step_details: sql.json({ type: 'message_creation', messageCreation: { messageId: answerId } }), usage: sql.json(usage),
      });
      if (runRows.length >= BATCH) await flush();
    }
    if (t % 100 === 99) log(`seeded ${t + 1}/${threads} threads`);
  }
  await flush();
  await sql`analyze`;
  return seeded;
}

import { describe, expect, it } from 'vitest';
import type { MessageRow, RunRow, RunStepRow } from '../../src/db/schema.js';
import { promptOf, promptParts, sumUsage } from '../../src/engine/execution.js';
import { messageTokens, promptTokens } from '../../src/engine/tokens.js';
import { fitPrompt } from '../../src/engine/truncation.js';

const run = (fields: Partial<RunRow> = {}) =>
  ({ id: 'run_1', instructions: 'Be brief.', additionalInstructions: null, truncationStrategy: null, ...fields }) as RunRow;
const message = (id: string, role: 'user' | 'assistant', content: string, runId: string | null = null) =>
  ({ id, role, content, runId }) as MessageRow;
const thread = [message('m1', 'user', 'one'), message('m2', 'assistant', 'two', 'run_0'), message('m3', 'user', 'three')];

describe('the prompt of a run', () => {
  it('is the instructions, then the thread in order', () => {
    expect(promptOf(run(), thread, [])).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 'two' },
      { role: 'user', content: 'three' },
    ]);
  });

  it('joins additional instructions to the instructions, and has no system message without either', () => {
    expect(promptOf(run({ additionalInstructions: 'In French.' }), [], [])).toEqual([
      { role: 'system', content: 'Be brief.\n\nIn French.' },
    ]);
    expect(promptOf(run({ instructions: '' }), [thread[0]!], [])).toEqual([{ role: 'user', content: 'one' }]);
  });

  it("leaves out the run's own answers (a run taken over after it wrote one)", () => {
    const own = message('m4', 'assistant', 'mine', 'run_1');
    expect(promptOf(run(), [...thread, own], []).map((m) => m.content)).not.toContain('mine');
  });

  it('keeps only the last messages under a last_messages truncation strategy', () => {
    const truncated = run({ truncationStrategy: { type: 'last_messages', lastMessages: 2 } });
    expect(promptOf(truncated, thread, []).map((m) => m.content)).toEqual(['Be brief.', 'two', 'three']);
  });

  it("ends with the run's tool calls, each followed by its output once submitted", () => {
    const call = (id: string, output: string | null) => ({
      id,
      type: 'function' as const,
      function: { name: 'lookup', arguments: '{}', output },
    });
    const step = { stepDetails: { type: 'tool_calls', toolCalls: [call('c1', '42'), call('c2', null)] } } as unknown as RunStepRow;
    expect(promptOf(run(), [], [step]).slice(1)).toEqual([
      {
        role: 'assistant',
        content: '',
        toolCalls: [
          { id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{}' } },
          { id: 'c2', type: 'function', function: { name: 'lookup', arguments: '{}' } },
        ],
      },
      { role: 'tool', content: '42', toolCallId: 'c1', name: 'lookup' },
    ]);
  });
});

describe('the usage of several model calls', () => {
  it('adds up, counting a missing usage as none', () => {
    const u = (p: number, c: number) => ({ promptTokens: p, completionTokens: c, totalTokens: p + c });
    expect(sumUsage([u(1, 2), null, undefined, u(10, 20)])).toEqual(u(11, 22));
  });
});

describe('AUTO truncation', () => {
  const tail = [message('m4', 'assistant', 'four'), message('m5', 'user', 'five'), message('m6', 'assistant', 'six')];

  it("may drop the thread's messages but its last user message, never the instructions", () => {
    expect(promptParts(run(), [...thread, ...tail], []).droppable).toEqual([false, true, true, true, true, false, true]);
  });

  it('drops the oldest droppable messages, one by one, until the prompt fits, and counts as promptTokens does', async () => {
    const { messages, droppable } = promptParts(run(), [...thread, ...tail], []);
    const counts = await messageTokens(messages);
    const whole = await promptTokens(messages);
    expect(fitPrompt(messages, counts, whole, droppable)).toMatchObject({ tokens: whole, fits: true, dropped: 0 });
    // One message's worth less: the oldest goes ('one'), and only it.
    const fitted = fitPrompt(messages, counts, whole - 1, droppable);
    expect(fitted.messages.map((m) => m.content)).toEqual(['Be brief.', 'two', 'three', 'four', 'five', 'six']);
    expect(fitted).toMatchObject({ fits: true, dropped: 1, tokens: await promptTokens(fitted.messages) });
    // Nothing fits: all that may go has gone, and it says so.
    const tight = fitPrompt(messages, counts, 1, droppable);
    expect(tight.messages.map((m) => m.content)).toEqual(['Be brief.', 'five']);
    expect(tight).toMatchObject({ fits: false, tokens: await promptTokens(tight.messages) });
  });

  it('counts a long prompt off the event loop, to the same numbers', async () => {
    const long = Array.from({ length: 50 }, (_, i) => ({ role: 'user' as const, content: `${i} ${'word '.repeat(100)}` }));
    const counts = await messageTokens(long);
    expect(counts).toHaveLength(50);
    expect(counts.reduce((a, b) => a + b, 3 + 4 * 50)).toBe(await promptTokens(long));
  });
});

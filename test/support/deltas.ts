import { expect } from 'vitest';

/**
 * A message's text from the deltas among a subscription's events (others are skipped),
 * each put at its index: every delta must continue exactly where the last one ended.
 * `start`: the text a resumed subscriber already had.
 */
export function assemble(events: { __typename: string; index?: number; text?: string }[], start = ''): string {
  let text = start;
  for (const e of events.filter((e) => e.__typename === 'MessageDeltaEvent')) {
    expect(e.index, `a delta at ${e.index} after ${text.length} characters`).toBe(text.length);
    text += e.text;
  }
  return text;
}

/** Group commit (src/db/batches.ts): what goes together, and what a failure takes down. */
import { describe, expect, it } from 'vitest';
import { batched } from '../../src/db/batches.js';

/** A write that records its batches and answers each item doubled, after a turn of I/O. */
function recorder() {
  const batches: number[][] = [];
  const write = async (items: number[]) => {
    batches.push(items);
    await new Promise((r) => setTimeout(r, 5));
    return items.map((i) => i * 2);
  };
  return { batches, write };
}

describe('batched', () => {
  it('writes the calls of one turn of the event loop as one batch, and answers each in order', async () => {
    const { batches, write } = recorder();
    const call = batched(write, 100);
    expect(await Promise.all([1, 2, 3].map(call))).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('holds calls made while a batch is in flight and sends them together next, one batch at a time', async () => {
    const { batches, write } = recorder();
    const call = batched(write, 100);
    const first = call(1);
    await new Promise((r) => setTimeout(r, 1)); // the first batch is now in flight
    const later = [call(2), call(3), call(4)];
    expect(await Promise.all([first, ...later])).toEqual([2, 4, 6, 8]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it('never puts more than maxBatch items in a batch', async () => {
    const { batches, write } = recorder();
    const call = batched(write, 2);
    await Promise.all([1, 2, 3, 4, 5].map(call));
    expect(batches).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('retries the items of a failed batch one by one, so one bad item fails alone', async () => {
    const seen: number[][] = [];
    const call = batched(async (items: number[]) => {
      seen.push(items);
      if (items.includes(13)) throw new Error('unlucky');
      return items;
    }, 100);
    const results = await Promise.allSettled([1, 13, 2].map(call));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toEqual(new Error('unlucky'));
    expect(seen).toEqual([[1, 13, 2], [1], [13], [2]]);
  });

  it('rejects a batch whose write answers the wrong number of items', async () => {
    const call = batched(async () => [], 100);
    await expect(call(1)).rejects.toThrow(/a batch of 1 got 0 answers/);
  });
});

/** Group commit (src/db/batches.ts): what goes together, and what a failure takes down. */
import { describe, expect, it } from 'vitest';
import { batched, batchedReads } from '../../src/db/batches.js';

/**
 * A write that records its batches and answers each item doubled, once the test opens
 * its gate: the test decides when a batch is "in flight".
 */
function gatedRecorder() {
  const batches: number[][] = [];
  const gates: (() => void)[] = [];
  const write = async (items: number[]) => {
    batches.push(items);
    await new Promise<void>((open) => gates.push(open));
    return items.map((i) => i * 2);
  };
  /** Waits until `n` batches have started. */
  const started = async (n: number) => {
    while (batches.length < n) await new Promise((r) => setImmediate(r));
  };
  const openNext = () => gates.shift()!();
  return { batches, write, started, openNext };
}

describe('batched', () => {
  it('writes the calls of one turn of the event loop as one batch, and answers each in order', async () => {
    const r = gatedRecorder();
    const call = batched(r.write, { maxBatch: 100 });
    const answers = Promise.all([1, 2, 3].map(call));
    await r.started(1);
    r.openNext();
    expect(await answers).toEqual([2, 4, 6]);
    expect(r.batches).toEqual([[1, 2, 3]]);
  });

  it('holds calls made while a batch is in flight and sends them together next, one batch at a time', async () => {
    const r = gatedRecorder();
    const call = batched(r.write, { maxBatch: 100 });
    const first = call(1);
    await r.started(1); // the first batch is in flight
    const later = [call(2), call(3)];
    await new Promise((resolve) => setImmediate(resolve));
    const last = call(4);
    await new Promise((resolve) => setImmediate(resolve));
    expect(r.batches).toEqual([[1]]); // nothing else starts while one is in flight
    r.openNext();
    await r.started(2);
    r.openNext();
    expect(await Promise.all([first, ...later, last])).toEqual([2, 4, 6, 8]);
    expect(r.batches).toEqual([[1], [2, 3, 4]]);
  });

  it('never puts more than maxBatch items in a batch', async () => {
    const seen: number[][] = [];
    const call = batched(async (items: number[]) => (seen.push(items), items), { maxBatch: 2 });
    expect(await Promise.all([1, 2, 3, 4, 5].map(call))).toEqual([1, 2, 3, 4, 5]);
    expect(seen).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('rejects every caller of a batch that failed as a whole (the database is down), and goes on with the next', async () => {
    let down = true;
    const seen: number[][] = [];
    const call = batched(
      async (items: number[]) => {
        seen.push(items);
        if (down) throw new Error('connection refused');
        return items;
      },
      { maxBatch: 100 },
    );
    const results = await Promise.allSettled([1, 2, 3].map(call));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(seen).toEqual([[1, 2, 3]]); // not retried one by one
    down = false;
    expect(await call(4)).toBe(4);
  });

  it("retries the items of a failed batch one by one when the error may be one item's fault", async () => {
    const seen: number[][] = [];
    const call = batched(
      async (items: number[]) => {
        seen.push(items);
        if (items.includes(13)) throw new Error('unlucky');
        return items;
      },
      { maxBatch: 100, retryAlone: (e) => (e as Error).message === 'unlucky' },
    );
    const results = await Promise.allSettled([1, 13, 2].map(call));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toEqual(new Error('unlucky'));
    expect(seen).toEqual([[1, 13, 2], [1], [13], [2]]);
  });

  it('rejects a batch whose write answers the wrong number of items', async () => {
    const call = batched(async () => [], { maxBatch: 100 });
    await expect(call(1)).rejects.toThrow(/a batch of 1 got 0 answers/);
  });
});

describe('batchedReads', () => {
  it('reads the keys asked together once each, and gives every caller its own rows', async () => {
    const asked: string[][] = [];
    const read = batchedReads(async (keys: string[]) => {
      asked.push(keys);
      return new Map(keys.filter((k) => k !== 'none').map((k) => [k, [`${k}-1`, `${k}-2`]]));
    });
    expect(await Promise.all(['a', 'b', 'a', 'none'].map(read))).toEqual([['a-1', 'a-2'], ['b-1', 'b-2'], ['a-1', 'a-2'], []]);
    expect(asked).toEqual([['a', 'b', 'none']]);
  });
});

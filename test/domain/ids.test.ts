/** Ids: a type prefix and a ULID, unique, in creation order, with a random part. */
import { describe, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.js';

const ULID = /^run_[0-9A-HJKMNP-TV-Z]{26}$/;

describe('newId', () => {
  it('gives distinct ids that sort in the order they were made, even within one millisecond', () => {
    const ids = Array.from({ length: 10_000 }, () => newId('run'));
    for (const id of ids) expect(id).toMatch(ULID);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('draws a fresh random part each millisecond, over all 32 symbols', async () => {
    const firstRandomSymbols = new Set<string>();
    for (let i = 0; i < 300; i++) {
      firstRandomSymbols.add(newId('run').slice(4 + 10, 4 + 11));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    // 300 uniform draws over 32 symbols miss more than 4 of them with probability < 1e-15.
    expect(firstRandomSymbols.size).toBeGreaterThanOrEqual(28);
  });
});

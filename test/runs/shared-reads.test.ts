/**
 * Every subscriber of an event reads the row it is about at once, so the reads of one row
 * are shared while in flight. A read that began before the change a subscriber heard of
 * committed must not answer for it: the subscriber would deliver stale text (a message's
 * end without its last characters).
 */
import { describe, expect, it } from 'vitest';
import { shared } from '../../src/runs/history.js';

interface Row {
  text: string;
}

/** A read the test answers when it likes, counting how many were made. */
function reads() {
  const pending: ((row: Row) => void)[] = [];
  return {
    pending,
    read: () => new Promise<Row | undefined>((resolve) => pending.push(resolve)),
  };
}

describe('shared reads of a row', () => {
  it('are one read for every caller while it is in flight', async () => {
    const map = new Map<string, Promise<Row | undefined>>();
    const db = reads();
    const a = shared(map, 'm', undefined, db.read);
    const b = shared(map, 'm', (row) => row.text.length >= 3, db.read);
    expect(db.pending).toHaveLength(1);
    db.pending[0]!({ text: 'abc' });
    expect(await a).toEqual({ text: 'abc' });
    expect(await b).toEqual({ text: 'abc' });
    expect(db.pending).toHaveLength(1);
    expect(map.size).toBe(0);
  });

  it('read again, alone, for a caller to whom the shared row is not current (it began before the change it heard of)', async () => {
    const map = new Map<string, Promise<Row | undefined>>();
    const db = reads();
    const early = shared(map, 'm', undefined, db.read); // began before the last text committed
    const late = shared(map, 'm', (row) => row.text.endsWith('.'), db.read); // heard of the message's end
    db.pending[0]!({ text: 'plain words' });
    expect(await early).toEqual({ text: 'plain words' });
    await new Promise((r) => setImmediate(r));
    expect(db.pending).toHaveLength(2);
    db.pending[1]!({ text: 'plain words.' });
    expect(await late).toEqual({ text: 'plain words.' });
  });
});

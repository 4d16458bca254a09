/**
 * Group commit: many callers' statements go to the database together. Calls made in the
 * same turn of the event loop, or while the previous batch is still being written, are
 * written as one batch by one call of `write`; one batch is in flight at a time. Idle, a
 * call goes out at once (after the current turn); busy, calls pile up behind the batch
 * in flight and leave together. So the round trips per call fall as the load rises,
 * which is where they matter.
 */

/** Writes the items, and answers each (in the same order). */
export type BatchWrite<I, O> = (items: I[]) => Promise<O[]>;

export interface BatchOptions {
  /** The most items in one batch (e.g. what fits one notification). */
  maxBatch: number;
  /**
   * Whether a failed batch's error may be one item's fault (a constraint, bad data, a
   * deadlock): then each item is written again alone, so one bad item fails alone.
   * Otherwise (the database is down...) every caller of the batch gets the error at once.
   * @default never
   */
  retryAlone?: (error: unknown) => boolean;
}

/**
 * @param write one batch's work; it must answer every item, in order. A retried item is
 * written again: the write must be safe to repeat (the engine's are guarded).
 */
export function batched<I, O>(write: BatchWrite<I, O>, options: BatchOptions): (item: I) => Promise<O> {
  const { maxBatch, retryAlone = () => false } = options;
  type Waiting = { item: I; resolve: (value: O) => void; reject: (error: unknown) => void };
  let pending: Waiting[] = [];
  let busy = false;

  async function writeOne(batch: Waiting[]): Promise<void> {
    try {
      const answers = await write(batch.map((w) => w.item));
      if (answers.length !== batch.length) throw new Error(`a batch of ${batch.length} got ${answers.length} answers`);
      batch.forEach((w, i) => w.resolve(answers[i] as O));
    } catch (error) {
      if (batch.length === 1 || !retryAlone(error)) return batch.forEach((w) => w.reject(error));
      // One bad item must not fail its neighbours: alone, each gets its own answer.
      for (const w of batch) await writeOne([w]);
    }
  }

  async function drain(): Promise<void> {
    while (pending.length > 0) {
      const batch = pending.slice(0, maxBatch);
      pending = pending.slice(batch.length);
      await writeOne(batch);
    }
    busy = false;
  }

  return (item) =>
    new Promise<O>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      if (busy) return;
      busy = true;
      // After the current turn: whatever else this turn adds joins the batch.
      setImmediate(() => void drain());
    });
}

/**
 * Reads by key, batched the same way: one `read` of all the keys asked together (each
 * once), and every caller gets its key's rows (none: an empty list).
 */
export function batchedReads<T>(read: (keys: string[]) => Promise<Map<string, T[]>>, maxBatch = 100): (key: string) => Promise<T[]> {
  return batched<string, T[]>(
    async (keys) => {
      const rows = await read([...new Set(keys)]);
      return keys.map((key) => rows.get(key) ?? []);
    },
    { maxBatch },
  );
}

/**
 * Writes that may wait on a row lock, kept from filling the connection pool. A write
 * waiting for a row holds its connection for as long as the lock timeout; fifty requests
 * for one row held by a stopped process would hold fifty connections, and every other
 * request of the process (another project's reads too) would queue behind them.
 *
 * - `inTurn`: per row, one use case at a time in this process; the others wait here,
 *   holding no connection (and sending no statement). When the one ahead gave up on the
 *   lock (or its statement timed out), those waiting behind it get its error at once:
 *   they would have waited on the same lock. After any other outcome, the next goes ahead.
 * - `inSlot`: across rows, at most `slots` writes at once, so that reads always find a
 *   connection; a write that cannot get a slot within `slotWaitMs` is answered
 *   RESOURCE_BUSY. Only the write takes a slot: the reads before it never wait for one.
 *
 * Hand-written (about fifty lines): keyed-lock libraries (async-lock, async-mutex) queue
 * callers per key, but none hands the outcome of the caller ahead to those behind.
 */
import { ResourceBusyError } from '../domain/errors.js';
import { isResourceBusy } from './errors.js';

export interface RowWriteOptions {
  /** Writes in flight at once, across rows. */
  slots: number;
  /** How long a write may wait for a slot before it is answered RESOURCE_BUSY. */
  slotWaitMs: number;
}

export interface RowWrites {
  /** Runs `work` as the only one of this process on row `key` (see above). */
  inTurn<T>(key: string, work: () => Promise<T>): Promise<T>;
  /** Runs `write` on one of the slots (see above). */
  inSlot<T>(write: () => Promise<T>): Promise<T>;
}

export function rowWrites({ slots, slotWaitMs }: RowWriteOptions): RowWrites {
  type Waiter = { go: () => void; fail: (error: unknown) => void };
  /** A row's entry exists while a use case on it runs, and lists those waiting behind it. */
  const rows = new Map<string, Waiter[]>();
  let busySlots = 0;
  const slotQueue: (() => void)[] = [];

  function takeSlot(): Promise<void> {
    if (busySlots < slots) {
      busySlots++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const granted = () => {
        clearTimeout(timer);
        busySlots++;
        resolve();
      };
      const timer = setTimeout(() => {
        slotQueue.splice(slotQueue.indexOf(granted), 1);
        reject(new ResourceBusyError());
      }, slotWaitMs);
      slotQueue.push(granted);
    });
  }

  return {
    async inTurn(key, work) {
      const behind = rows.get(key);
      const queue = behind ?? [];
      if (behind) await new Promise<void>((go, fail) => behind.push({ go, fail }));
      else rows.set(key, queue);
      // This call now owns the row until it hands it on (the queue stays the key's until
      // it is empty: only its last owner deletes it).
      try {
        return await work();
      } catch (error) {
        if (error instanceof ResourceBusyError || isResourceBusy(error)) {
          for (const waiter of queue.splice(0)) waiter.fail(error);
        }
        throw error;
      } finally {
        const next = queue.shift();
        if (next) next.go();
        else rows.delete(key);
      }
    },

    async inSlot(write) {
      await takeSlot();
      try {
        return await write();
      } finally {
        busySlots--;
        slotQueue.shift()?.();
      }
    },
  };
}

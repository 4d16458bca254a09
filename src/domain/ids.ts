import { monotonicFactory } from 'ulid';

/**
 * Ids are a type prefix (as in the Assistants API: `run_`, `thread_`...) and a ULID:
 * lexicographic order is creation order, which keyset pagination relies on. The
 * monotonic factory keeps ids made within one millisecond in order in this process.
 */
const ulid = monotonicFactory();

export type IdPrefix = 'asst' | 'thread' | 'msg' | 'run' | 'step' | 'key';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid()}`;
}

/**
 * The wire form of committed transitions between processes: one line per event, ids,
 * numbers and statuses only (a NOTIFY payload must stay small: at most 8000 bytes, and
 * every byte is paid for under the commit lock).
 *
 *   <runId> <threadId> <threadSeq> <version> <status> <previousStatus|-> <at>
 */
import { sql, type SQL } from 'drizzle-orm';
import type { EventColumns } from '../runs/announcer.js';
import type { RunStatusEvent } from '../domain/run.js';
import { RUN_STATUSES, type RunStatus } from '../domain/run-lifecycle.js';

export const MAX_PAYLOAD_BYTES = 7900;

export function encodeEvents(events: readonly RunStatusEvent[]): string {
  return events
    .map((e) => `${e.runId} ${e.threadId} ${e.threadSeq} ${e.version} ${e.status} ${e.previousStatus ?? '-'} ${e.at}`)
    .join('\n');
}

/**
 * The payload {@link encodeEvents} writes, written by PostgreSQL: an aggregate over the
 * event rows a statement wrote, for a statement that announces its own events (their
 * versions and thread positions are only known inside it). Lines in run and version order.
 */
export function eventLinesSql(e: EventColumns): SQL {
  const line = sql`concat_ws(' ', ${e.runId}, ${e.threadId}, ${e.threadSeq}, ${e.version}, ${e.status}, coalesce(${e.previousStatus}::text, '-'), ${e.at})`;
  return sql`string_agg(${line}, E'\n' order by ${e.runId}, ${e.version})`;
}

const isStatus = (s: string | undefined): s is RunStatus => RUN_STATUSES.includes(s as RunStatus);

/** Lines that do not parse are skipped: a payload from another version of Runway, say. */
export function decodeEvents(payload: string): RunStatusEvent[] {
  const events: RunStatusEvent[] = [];
  for (const line of payload.split('\n')) {
    const [runId, threadId, threadSeq, version, status, previous, at] = line.split(' ');
    if (!runId || !threadId || !isStatus(status) || (previous !== '-' && !isStatus(previous))) continue;
    const event = {
      runId,
      threadId,
      threadSeq: Number(threadSeq),
      version: Number(version),
      status,
      previousStatus: previous === '-' ? null : (previous as RunStatus),
      at: Number(at),
    };
    if (Number.isInteger(event.threadSeq) && Number.isInteger(event.version) && Number.isInteger(event.at)) events.push(event);
  }
  return events;
}

/**
 * The wire form of run events between processes: one line per event, ids, numbers and
 * names only, but for a text delta's piece (a NOTIFY payload must stay small: at most
 * 8000 bytes, and every byte is paid for under the commit lock).
 *
 *   <runId> <threadId> <threadSeq> <version> <status> <previousStatus|-> <at>        a status change
 *   m <runId> <threadId> <threadSeq> <version> <sub> <messageId> <change> <at>       a message event
 *   s <runId> <threadId> <threadSeq> <version> <sub> <stepId> <status> <at>          a step event
 *   d <runId> <threadId> <messageId> <index> <length> <JSON string|->              text appended
 *
 * Status lines keep the form they had before the others existed, so a process of an
 * earlier version still reads them (and skips the rest).
 */
import { sql, type SQL } from 'drizzle-orm';
import type { EventColumns, ItemColumns } from '../runs/announcer.js';
import type { RunStatusEvent } from '../domain/run.js';
import { MESSAGE_CHANGES, STEP_STATUSES, type LiveEvent, type MessageChange, type StepStatus } from '../domain/run-events.js';
import { RUN_STATUSES, type RunStatus } from '../domain/run-lifecycle.js';

export const MAX_PAYLOAD_BYTES = 7900;

export function encodeEvent(e: LiveEvent): string {
  if (!('kind' in e)) return `${e.runId} ${e.threadId} ${e.threadSeq} ${e.version} ${e.status} ${e.previousStatus ?? '-'} ${e.at}`;
  switch (e.kind) {
    case 'message':
      return `m ${e.runId} ${e.threadId} ${e.threadSeq} ${e.version} ${e.sub} ${e.messageId} ${e.change} ${e.at}`;
    case 'step':
      return `s ${e.runId} ${e.threadId} ${e.threadSeq} ${e.version} ${e.sub} ${e.stepId} ${e.status} ${e.at}`;
    case 'delta':
      return deltaLine(e.runId, e.threadId, e.messageId, e.index, e.length, e.text);
  }
}

export function encodeEvents(events: readonly LiveEvent[]): string {
  return events.map(encodeEvent).join('\n');
}

/** A delta's line; `text` null when the piece is not carried. */
export function deltaLine(runId: string, threadId: string, messageId: string, index: number, length: number, text: string | null): string {
  return `d ${runId} ${threadId} ${messageId} ${index} ${length} ${text === null ? '-' : JSON.stringify(text)}`;
}

/** A status event's line, written by PostgreSQL from its columns. */
export function statusLineSql(e: EventColumns): SQL {
  return sql`concat_ws(' ', ${e.runId}, ${e.threadId}, ${e.threadSeq}, ${e.version}, ${e.status}, coalesce(${e.previousStatus}::text, '-'), ${e.at})`;
}

/** An item event's line, written by PostgreSQL from its columns. */
export function itemLineSql(e: ItemColumns): SQL {
  return sql`concat_ws(' ', left(${e.kind}, 1), ${e.runId}, ${e.threadId}, ${e.threadSeq}, ${e.version}, ${e.sub}, ${e.itemId}, ${e.change}, ${e.at})`;
}

/**
 * The payload {@link encodeEvents} writes, written by PostgreSQL: an aggregate over the
 * event rows a statement wrote, for a statement that announces its own events (their
 * versions and thread positions are only known inside it). Lines in run and version order.
 */
export function eventLinesSql(e: EventColumns): SQL {
  return sql`string_agg(${statusLineSql(e)}, E'\n' order by ${e.runId}, ${e.version})`;
}

const isStatus = (s: string | undefined): s is RunStatus => RUN_STATUSES.includes(s as RunStatus);
const isInt = (...values: number[]) => values.every(Number.isInteger);

/** Lines that do not parse are skipped: a payload from another version of Runway, say. */
export function decodeEvents(payload: string): LiveEvent[] {
  const events: LiveEvent[] = [];
  for (const line of payload.split('\n')) {
    const event = decodeLine(line);
    if (event) events.push(event);
  }
  return events;
}

function decodeLine(line: string): LiveEvent | undefined {
  const kind = line.slice(0, 2);
  if (kind === 'd ') return decodeDelta(line);
  if (kind === 'm ' || kind === 's ') {
    const [, runId, threadId, threadSeq, version, sub, itemId, change, at] = line.split(' ');
    if (!runId || !threadId || !itemId || !change) return undefined;
    const position = { threadSeq: Number(threadSeq), version: Number(version), sub: Number(sub), at: Number(at) };
    if (!isInt(position.threadSeq, position.version, position.sub, position.at)) return undefined;
    if (kind === 'm ') {
      if (!MESSAGE_CHANGES.includes(change as MessageChange)) return undefined;
      return { kind: 'message', runId, threadId, ...position, messageId: itemId, change: change as MessageChange };
    }
    if (!STEP_STATUSES.includes(change as StepStatus)) return undefined;
    return { kind: 'step', runId, threadId, ...position, stepId: itemId, status: change as StepStatus };
  }
  const [runId, threadId, threadSeq, version, status, previous, at] = line.split(' ');
  if (!runId || !threadId || !isStatus(status) || (previous !== '-' && !isStatus(previous))) return undefined;
  const event: RunStatusEvent = {
    runId,
    threadId,
    threadSeq: Number(threadSeq),
    version: Number(version),
    status,
    previousStatus: previous === '-' ? null : (previous as RunStatus),
    at: Number(at),
  };
  return isInt(event.threadSeq, event.version, event.at) ? event : undefined;
}

function decodeDelta(line: string): LiveEvent | undefined {
  // The piece is last and may hold spaces: split off the six fields before it.
  let at = 2;
  const fields: string[] = [];
  for (let i = 0; i < 5; i++) {
    const space = line.indexOf(' ', at);
    if (space < 0) return undefined;
    fields.push(line.slice(at, space));
    at = space + 1;
  }
  const [runId, threadId, messageId, index, length] = fields as [string, string, string, string, string];
  const raw = line.slice(at);
  let text: string | null = null;
  if (raw !== '-') {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'string') return undefined;
      text = parsed;
    } catch {
      return undefined;
    }
  }
  const delta = { kind: 'delta' as const, runId, threadId, messageId, index: Number(index), length: Number(length), text };
  if (!isInt(delta.index, delta.length) || (text !== null && text.length !== delta.length)) return undefined;
  return delta;
}

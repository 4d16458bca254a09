/**
 * Everything that happens to a run, as the live streams carry it: its status changes
 * (RunStatusEvent), what happens inside it between two of them (a message created,
 * completed or left incomplete; a step's status change), and the text its assistant
 * message gains as the model writes it.
 *
 * Status and item events are durable (`run_events`, `run_item_events`) and placed in
 * their thread's order by (threadSeq, version, sub): a status event is at sub 0, the
 * item events after it at sub 1, 2... Text deltas are not stored one by one: the
 * message's row holds the text so far, and a delta says where its piece goes (`index`,
 * in UTF-16 code units, JavaScript's string indexes), so a reader that missed some can
 * always read the rest from the row.
 */
import type { RunStatusEvent } from './run.js';

export type MessageChange = 'created' | 'completed' | 'incomplete';
export const MESSAGE_CHANGES: readonly MessageChange[] = ['created', 'completed', 'incomplete'];

export type StepStatus = 'in_progress' | 'cancelled' | 'failed' | 'completed' | 'expired';
export const STEP_STATUSES: readonly StepStatus[] = ['in_progress', 'cancelled', 'failed', 'completed', 'expired'];

/** Where a durable event stands in its thread's history. */
export interface EventPosition {
  threadSeq: number;
  version: number;
  /** 0 for a status change; 1, 2... for the item events after it. */
  sub: number;
}

interface ItemEventBase extends EventPosition {
  runId: string;
  threadId: string;
  /** Unix seconds. */
  at: number;
}

export interface MessageEvent extends ItemEventBase {
  kind: 'message';
  messageId: string;
  change: MessageChange;
}

export interface StepEvent extends ItemEventBase {
  kind: 'step';
  stepId: string;
  /** The step's status after the change (in_progress: created). */
  status: StepStatus;
}

export type ItemEvent = MessageEvent | StepEvent;

/** Text appended to an in-progress message. */
export interface TextDelta {
  kind: 'delta';
  runId: string;
  threadId: string;
  messageId: string;
  /** Where `text` starts in the message's text (UTF-16 code units). */
  index: number;
  /** How long the piece is (UTF-16 code units). */
  length: number;
  /** The piece; null when it was too long to carry (the reader takes it from the message). */
  text: string | null;
}

/** What the transports carry between processes and the bus hands to subscribers. */
export type LiveEvent = RunStatusEvent | ItemEvent | TextDelta;

export const isStatusEvent = (e: LiveEvent): e is RunStatusEvent => !('kind' in e);

/** A durable event's position (a status event's is its version at sub 0). */
export function positionOf(e: RunStatusEvent | ItemEvent): EventPosition {
  return { threadSeq: e.threadSeq, version: e.version, sub: 'kind' in e ? e.sub : 0 };
}

/** Orders positions: negative when `a` comes first. */
export function comparePositions(a: EventPosition, b: EventPosition): number {
  return a.threadSeq - b.threadSeq || a.version - b.version || a.sub - b.sub;
}

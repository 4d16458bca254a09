/**
 * A run's live content as the Assistants API streams it (`AssistantStreamEvent` in OpenAI's
 * OpenAPI description): each delivery of the run's content stream
 * (realtime/content-streams.ts, the one GraphQL's runEvents reads) becomes the events the
 * API sends for it, named as the API names them, their objects converted by wire.ts as the
 * event left them.
 *
 * - A status change is `thread.run.<status>`; the run's first (QUEUED, version 1) is
 *   `thread.run.created`, then `thread.run.queued`.
 * - A step begun is `thread.run.step.created`, then `thread.run.step.in_progress`; a
 *   tool-calls step then gets one `thread.run.step.delta` per call (the API creates the step
 *   with no calls and streams them in, and the official clients' `toolCallCreated` and
 *   `toolCallDone` come from those deltas). A step's end is `thread.run.step.<status>`.
 * - A message begun is `thread.message.created`, then `thread.message.in_progress`, with no
 *   content yet (the API's `content: []`: the first delta creates the text part); its text
 *   comes as `thread.message.delta` events, part 0 of the content; its end is
 *   `thread.message.completed` (or `incomplete`), with all its text.
 */
import type { AssistantStreamEvent } from 'openai/resources/beta/assistants';
import type { MessageDeltaEvent } from 'openai/resources/beta/threads/messages';
import type { RunStepDeltaEvent } from 'openai/resources/beta/threads/runs/steps';
import type { MessageRow, RunRow, RunStepRow } from '../db/schema.js';
import type { MessageEvent, StepEvent } from '../domain/run-events.js';
import type { RunStatusEvent } from '../domain/run.js';
import { isTerminal } from '../domain/run-lifecycle.js';
import type { ContentDelivery, DeliveredDelta } from '../realtime/content-streams.js';
import type { RunHistory } from '../runs/index.js';
import { messageObject, runObject, runStepObject } from './wire.js';

/** The reads an event's object needs (shared by every subscriber of the event, as GraphQL's are). */
export type StreamReads = Pick<RunHistory, 'runForEvent' | 'message' | 'step'>;

/**
 * What the events of one run's stream are made with: the reads, and what never changes of
 * the run (its assistant), which a message or step begun by it carries.
 */
export interface StreamContext {
  reads: StreamReads;
  assistantId: string;
}

/** The stream events of one delivery, in the order the API sends them. */
export async function streamEventsOf(delivery: ContentDelivery, context: StreamContext): Promise<AssistantStreamEvent[]> {
  if ('delta' in delivery) return [{ event: 'thread.message.delta', data: messageDelta(delivery.delta) }];
  const { event } = delivery;
  if (!('kind' in event)) return runEvents(event, 'run' in delivery ? delivery.run : undefined, context.reads);
  if (event.kind === 'message') return messageEvents(event, 'message' in delivery ? delivery.message : undefined, context);
  return stepEvents(event, context.reads);
}

/**
 * A step begun whose message is the next event: the run began writing a message, and
 * recorded its message-creation step and the message together (runs/sql/items.ts), one
 * position apart. Such a step's object is known from the message's event, without a read:
 * this is the first thing a streamed answer sends, and its first delta waits for it.
 */
export function messageCreationStep(step: ContentDelivery, next: ContentDelivery): { step: StepEvent; message: MessageEvent } | undefined {
  if (!('event' in step) || !('event' in next)) return undefined;
  const [s, m] = [step.event, next.event];
  if (!('kind' in s) || s.kind !== 'step' || s.status !== 'in_progress') return undefined;
  if (!('kind' in m) || m.kind !== 'message' || m.change !== 'created') return undefined;
  const adjacent = m.runId === s.runId && m.version === s.version && m.sub === s.sub + 1;
  return adjacent ? { step: s, message: m } : undefined;
}

/** The events of a message-creation step begun (see {@link messageCreationStep}). */
export function messageCreationStepEvents(step: StepEvent, message: MessageEvent, assistantId: string): AssistantStreamEvent[] {
  const data = runStepObject({
    id: step.stepId,
    runId: step.runId,
    threadId: step.threadId,
    assistantId,
    createdAt: step.at,
    type: 'message_creation',
    status: 'in_progress',
    stepDetails: { type: 'message_creation', messageCreation: { messageId: message.messageId } },
    lastError: null,
    completedAt: null,
    cancelledAt: null,
    failedAt: null,
    expiredAt: null,
    usage: null,
  });
  return [
    { event: 'thread.run.step.created', data },
    { event: 'thread.run.step.in_progress', data },
  ];
}

/** Whether the API's stream of a run ends after this delivery: the run ended, or waits for tool outputs. */
export function endsStream(delivery: ContentDelivery): boolean {
  if (!('event' in delivery) || 'kind' in delivery.event) return false;
  return isTerminal(delivery.event.status) || delivery.event.status === 'requires_action';
}

async function runEvents(event: RunStatusEvent, run: RunRow | undefined, reads: StreamReads): Promise<AssistantStreamEvent[]> {
  const row = run?.version === event.version ? run : await reads.runForEvent(event.runId, event.version);
  if (!row) throw new Error(`run ${event.runId} vanished`);
  const data = runObject(row);
  if (event.status === 'queued' && event.version === 1) {
    return [
      { event: 'thread.run.created', data },
      { event: 'thread.run.queued', data },
    ];
  }
  return [{ event: `thread.run.${event.status}`, data }];
}

async function messageEvents(
  event: MessageEvent,
  message: MessageRow | undefined,
  context: StreamContext,
): Promise<AssistantStreamEvent[]> {
  if (event.change === 'created') {
    // A message begun is all in its event: the run's assistant writes it, empty so far, with no metadata.
    const data = { ...messageObject(messageBegun(event, context.assistantId)), content: [] };
    return [
      { event: 'thread.message.created', data },
      { event: 'thread.message.in_progress', data },
    ];
  }
  // A row read for an end shows that end, with all its text (a shared read may predate it).
  const row = message ?? (await context.reads.message(event.messageId, (m) => m.status !== 'in_progress'));
  if (!row) throw new Error(`message ${event.messageId} vanished`);
  return [{ event: `thread.message.${event.change}`, data: messageObject({ ...row, status: event.change }) }];
}

/** The assistant message as its run began it (runs/sql/items.ts writes it so), before its text. */
function messageBegun(event: MessageEvent, assistantId: string): MessageRow {
  return {
    id: event.messageId,
    threadId: event.threadId,
    createdAt: event.at,
    role: 'assistant',
    content: '',
    status: 'in_progress',
    runId: event.runId,
    assistantId,
    metadata: {},
  };
}

async function stepEvents(event: StepEvent, reads: StreamReads): Promise<AssistantStreamEvent[]> {
  const begun = event.status === 'in_progress';
  const row = await reads.step(event.stepId, (s) => begun || s.status !== 'in_progress');
  if (!row) throw new Error(`step ${event.stepId} vanished`);
  if (!begun) return [{ event: `thread.run.step.${event.status}`, data: runStepObject({ ...row, status: event.status }) }];
  const data = runStepObject(stepBegun(row));
  return [
    { event: 'thread.run.step.created', data },
    { event: 'thread.run.step.in_progress', data },
    ...toolCallDeltas(row).map((delta): AssistantStreamEvent => ({ event: 'thread.run.step.delta', data: delta })),
  ];
}

/**
 * The step as it was begun: in progress, with no end and no usage yet (the API's is null
 * while a step is in progress), and its calls (if any) to come as deltas.
 */
function stepBegun(row: RunStepRow): RunStepRow {
  const details = row.stepDetails.type === 'tool_calls' ? { type: 'tool_calls' as const, toolCalls: [] } : row.stepDetails;
  return {
    ...row,
    status: 'in_progress',
    stepDetails: details,
    usage: null,
    completedAt: null,
    failedAt: null,
    cancelledAt: null,
    expiredAt: null,
    lastError: null,
  };
}

/** A tool-calls step's calls, one delta each, as the API streams them in (no output yet: it comes with the step's end). */
function toolCallDeltas(row: RunStepRow): RunStepDeltaEvent[] {
  if (row.stepDetails.type !== 'tool_calls') return [];
  return row.stepDetails.toolCalls.map((call, index) => ({
    id: row.id,
    object: 'thread.run.step.delta',
    delta: {
      step_details: {
        type: 'tool_calls',
        tool_calls: [
          {
            index,
            id: call.id,
            type: 'function',
            function: { name: call.function.name, arguments: call.function.arguments, output: null },
          },
        ],
      },
    },
  }));
}

/** Text added to the message: the API's message delta, on the message's one text part. */
function messageDelta(delta: DeliveredDelta): MessageDeltaEvent {
  return {
    id: delta.messageId,
    object: 'thread.message.delta',
    delta: { content: [{ index: 0, type: 'text', text: { value: delta.text, annotations: [] } }] },
  };
}

/**
 * Streamed runs: creating a run, creating a thread and a run, or submitting tool outputs
 * with `"stream": true` answers the run's events as server-sent events, as the Assistants
 * API streams them (stream-events.ts), until the run ends or waits for tool outputs; then
 * `event: done` with `data: [DONE]`.
 *
 * The events come from the run's content stream, the one GraphQL's runEvents reads,
 * resumed from a cursor placed just before the request's own change, so that the answer
 * has every event from that change on, once, in order, however far the worker got before
 * the stream was opened: for a new run, before its first event (its QUEUED, which the API
 * calls `thread.run.created` and `thread.run.queued`); after tool outputs, before the
 * events that submitting them recorded (the tool-calls step's end, then QUEUED). A
 * request retried with its idempotency key gets its run's events from the same place:
 * all of a created run's; a submission's from the event that left the run as it is now.
 *
 * A client that hangs up ends its subscription at once. One that reads too slowly is
 * ended as GraphQL's subscriptions are: its bounded queue overflows, and the stream ends
 * with an `error` event (SUBSCRIPTION_LAGGED) instead of `done`; the run goes on, and can
 * be read or polled.
 */
import type { ServerResponse } from 'node:http';
import type { AssistantStreamEvent } from 'openai/resources/beta/assistants';
import type { RunRow } from '../db/schema.js';
import type { Caller } from '../domain/caller.js';
import { NotFoundError } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { encodeContentCursor, runContentStream, type ContentDelivery } from '../realtime/content-streams.js';
import type { RunEventBus } from '../realtime/event-bus.js';
import type { Lagged } from '../realtime/run-streams.js';
import type { RunCommands, RunHistory } from '../runs/index.js';
import type { ThreadService } from '../threads/thread-service.js';
import { errorAnswer } from './errors.js';
import { EventStreamResponse } from './sse.js';
import { endsStream, messageCreationStep, messageCreationStepEvents, streamEventsOf, type StreamContext } from './stream-events.js';
import { threadObject } from './wire.js';

/** What a streamed answer reads the run's events with. */
export interface StreamServices {
  runs: RunCommands;
  history: RunHistory;
  threads: ThreadService;
  bus: RunEventBus;
}

/**
 * The events of a run the request created, from its first on; with `thread`, the
 * request created the thread too, and `thread.created` comes first.
 */
export async function streamFromCreation(
  services: StreamServices,
  caller: Caller,
  run: RunRow,
  options: { thread?: boolean } = {},
): Promise<RunEventStream> {
  const opening: AssistantStreamEvent[] = [];
  if (options.thread) {
    const thread = await services.threads.get(caller.projectId, run.threadId);
    if (!thread) throw new NotFoundError('thread', run.threadId);
    opening.push({ event: 'thread.created', data: threadObject(thread) });
  }
  return open(services, caller, run, 0, opening);
}

/** The events of a run whose tool outputs the request submitted (`run` as the submission left it), from that submission on. */
export function streamFromSubmission(services: StreamServices, caller: Caller, run: RunRow): Promise<RunEventStream> {
  return open(services, caller, run, run.version - 1, []);
}

/**
 * Subscribes to the run's content after its status event of `version` (that event left
 * out, the item events recorded after it in), before the answer starts: a failure here
 * is still answered as an error status.
 */
async function open(
  services: StreamServices,
  caller: Caller,
  run: RunRow,
  version: number,
  opening: AssistantStreamEvent[],
): Promise<RunEventStream> {
  const after = encodeContentCursor({ threadSeq: run.threadSeq, version, sub: 0 });
  const deps = { ...services, projectId: caller.projectId };
  const deliveries = await runContentStream(deps, run.threadId, run.id, after);
  return new RunEventStream(deliveries, { reads: services.history, assistantId: run.assistantId }, opening);
}

type Next = IteratorResult<ContentDelivery | Lagged>;

/** A streamed answer: the run's events, once the response is handed to it. */
export class RunEventStream {
  /** The delivery after the one being sent, when it was looked at before its turn. */
  private ahead: Promise<Next> | undefined;

  constructor(
    private readonly deliveries: AsyncIterableIterator<ContentDelivery | Lagged>,
    private readonly context: StreamContext,
    private readonly opening: readonly AssistantStreamEvent[],
  ) {}

  /** Streams the events until the run ends or waits, the client hangs up, or it lags behind. Never rejects. */
  async send(res: ServerResponse, log: Logger): Promise<void> {
    const sse = new EventStreamResponse(res);
    const release = () => void this.deliveries.return?.().catch(() => undefined);
    sse.onClose(release);
    try {
      for (const event of this.opening) write(sse, event);
      for (;;) {
        await sse.room();
        if (sse.closed) return;
        const next = await this.next();
        if (next.done || sse.closed) return; // the client hung up
        const delivery = next.value;
        if ('lagged' in delivery) return void writeError(sse, delivery.lagged);
        for (const event of await this.eventsOf(delivery)) write(sse, event);
        if (endsStream(delivery)) break;
      }
      sse.send('done', '[DONE]');
    } catch (error) {
      if (writeError(sse, error).bug) log.error({ err: error }, 'streamed run failed');
    } finally {
      release();
      sse.end();
    }
  }

  private next(): Promise<Next> {
    const next = this.ahead ?? this.deliveries.next();
    this.ahead = undefined;
    return next;
  }

  /**
   * A delivery's events. A step begun is looked at with the delivery after it when that
   * one is already there (they came in one notification): a message-creation step and its
   * message are then sent from their events alone, with no read before the first delta.
   */
  private async eventsOf(delivery: ContentDelivery): Promise<AssistantStreamEvent[]> {
    if ('event' in delivery && 'kind' in delivery.event && delivery.event.kind === 'step' && delivery.event.status === 'in_progress') {
      const ahead = this.deliveries.next();
      this.ahead = ahead;
      const following = await promptly(ahead);
      const message = following && !following.done && !('lagged' in following.value) ? following.value : undefined;
      const pair = message && messageCreationStep(delivery, message);
      if (message && pair) {
        this.ahead = undefined;
        return [
          ...messageCreationStepEvents(pair.step, pair.message, this.context.assistantId),
          ...(await streamEventsOf(message, this.context)),
        ];
      }
    }
    return streamEventsOf(delivery, this.context);
  }
}

/** `promise`'s result if it settles before the event loop turns; undefined if it is still pending. */
function promptly<T>(promise: Promise<T>): Promise<T | undefined> {
  return Promise.race([promise, new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined)))]);
}

function write(sse: EventStreamResponse, { event, data }: AssistantStreamEvent): void {
  sse.send(event, JSON.stringify(data));
}

/** The stream's `error` event: OpenAI's error object, as a REST answer's body has it. Returns whether the error is a bug. */
function writeError(sse: EventStreamResponse, error: unknown): { bug: boolean } {
  const { body, bug } = errorAnswer(error);
  write(sse, { event: 'error', data: body.error });
  return { bug };
}

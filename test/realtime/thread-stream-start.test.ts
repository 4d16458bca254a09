/**
 * threadRunsChanged without a cursor starts where the thread is, and from the moment the
 * subscription is registered every transition reaches it. The thread's position is read
 * once: an event committed while that read is under way must be neither skipped as seen
 * (it was never sent) nor sent twice. Seen under load: a run made just after the
 * subscription registered ended before the position was read, and its subscriber heard
 * nothing of it.
 */
import { describe, expect, it } from 'vitest';
import type { RunStatusEvent } from '../../src/domain/run.js';
import { createInProcessEventBus } from '../../src/realtime/event-bus.js';
import { threadRunsStream, type StreamDeps } from '../../src/realtime/run-streams.js';
import type { RunHistory } from '../../src/runs/index.js';
import type { ThreadService } from '../../src/threads/thread-service.js';
import { eventually } from '../support/test-app.js';

const THREAD = 'thread_01J00000000000000000000000';
const at = (version: number, status: RunStatusEvent['status'], previousStatus: RunStatusEvent['previousStatus']): RunStatusEvent => ({
  runId: 'run_01J00000000000000000000000',
  threadId: THREAD,
  threadSeq: 1,
  version,
  status,
  previousStatus,
  at: 1_790_000_000 + version,
});
const RUN = [at(1, 'queued', null), at(2, 'in_progress', 'queued'), at(3, 'completed', 'in_progress')];

describe('threadRunsChanged started without a cursor', () => {
  it('sends a run made once it is registered, even when the run ends while the thread’s position is being read', async () => {
    const bus = createInProcessEventBus();
    const committed: RunStatusEvent[] = [];
    const history = {
      // A slow read (a busy database): it sees whatever committed before it returns.
      async lastThreadPosition() {
        await new Promise((r) => setTimeout(r, 100));
        const last = committed.at(-1);
        return last ? { threadSeq: last.threadSeq, version: last.version } : { threadSeq: 0, version: 0 };
      },
      async threadEventsAfter(_: string, after: { threadSeq: number; version: number }) {
        return committed.filter((e) => e.threadSeq > after.threadSeq || (e.threadSeq === after.threadSeq && e.version > after.version));
      },
    };
    const deps = {
      bus,
      history: history as unknown as RunHistory,
      threads: { get: async () => ({ id: THREAD }) } as unknown as ThreadService,
      runs: { getInProject: async () => undefined },
      projectId: 'p',
    } as StreamDeps;

    const started = threadRunsStream(deps, THREAD);
    // The run is made as soon as the subscription is registered, and runs to its end at once.
    await eventually(() => bus.subscriberCount(`thread:${THREAD}`) === 1, 5000);
    committed.push(...RUN);
    bus.publish(RUN);

    const stream = await started;
    const seen: string[] = [];
    for await (const delivery of stream) {
      if ('event' in delivery) seen.push(delivery.event.status);
      if (seen.includes('completed')) break;
    }
    expect(seen).toEqual(['queued', 'in_progress', 'completed']);
  });
});

import type { AssistantService } from '../assistants/assistant-service.js';
import type { Caller } from '../domain/caller.js';
import type { AnswerBudget } from './answer-budget.js';
import type { RunEventBus } from '../realtime/event-bus.js';
import type { DirectSink } from '../realtime/run-streams.js';
import type { RunCommands, RunHistory } from '../runs/index.js';
import type { ThreadService } from '../threads/thread-service.js';

/** The use cases, built once per process: what the server hands to every request. */
export interface Services {
  /** What clients may do with runs: never claim, lease or finish them. */
  runs: RunCommands;
  /** The runs' event history, for subscriptions. */
  history: RunHistory;
  threads: ThreadService;
  assistants: AssistantService;
  bus: RunEventBus;
}

export type { Caller } from '../domain/caller.js';

/**
 * What every resolver gets: the use cases and the caller, never a database handle; on the
 * websocket, for an operation whose events it can project, a sink that sends them as they
 * come; and the bytes the answer being built may still take.
 */
export type GraphQLContext = Services & Caller & { direct?: DirectSink<unknown> | undefined; answer?: AnswerBudget | undefined };

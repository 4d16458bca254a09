import type { AssistantService } from '../assistants/assistant-service.js';
import type { RunEventBus } from '../realtime/event-bus.js';
import type { RunService } from '../runs/run-service.js';
import type { ThreadService } from '../threads/thread-service.js';

/** What every resolver gets: the use cases, never a database handle. */
export interface GraphQLContext {
  runs: RunService;
  threads: ThreadService;
  assistants: AssistantService;
  bus: RunEventBus;
}

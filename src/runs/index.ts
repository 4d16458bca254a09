/**
 * The runs, by audience: `commands` for clients (resolvers, any API face), `engine` for
 * workers, `history` for subscriptions. They share one transition core, so each write
 * that records run events announces them the same way whoever makes it.
 */
import { RunCommands } from './commands.js';
import { RunCore, type RunDeps } from './core.js';
import { RunEngine } from './run-engine.js';
import { RunHistory } from './history.js';

export interface RunFaces {
  commands: RunCommands;
  engine: RunEngine;
  history: RunHistory;
}

export function runFaces(deps: RunDeps): RunFaces {
  const core = new RunCore(deps);
  return { commands: new RunCommands(core), engine: new RunEngine(core), history: new RunHistory(core) };
}

export type { RunDeps } from './core.js';
export type { CreateRunInput, CreateThreadAndRunInput, StepPageKey } from './commands.js';
export { RunCommands, RunEngine, RunHistory };
export { MAX_CLAIM } from './run-engine.js';
export type { MessageStream, StreamedMessage } from './message-streams.js';

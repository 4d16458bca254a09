import { describe, expect, it } from 'vitest';
import {
  ACTIVE_STATUSES,
  canTransition,
  isTerminal,
  RUN_STATUSES,
  sourcesOf,
  TERMINAL_STATUSES,
  targetsOf,
  type RunStatus,
} from '../../src/domain/run-status.js';

// The lifecycle as issue #2 states it, written out independently of the module so that a
// change to the module's table shows up here as a failing pair.
const ALLOWED: Record<RunStatus, RunStatus[]> = {
  queued: ['in_progress', 'cancelling', 'cancelled', 'failed', 'expired'],
  in_progress: ['requires_action', 'completed', 'incomplete', 'failed', 'cancelling', 'expired'],
  requires_action: ['queued', 'cancelling', 'cancelled', 'failed', 'expired'],
  cancelling: ['cancelled', 'completed', 'incomplete', 'failed', 'expired'],
  cancelled: [],
  failed: [],
  completed: [],
  incomplete: [],
  expired: [],
};

describe('run transition table', () => {
  for (const from of RUN_STATUSES) {
    for (const to of RUN_STATUSES) {
      const legal = ALLOWED[from].includes(to);
      it(`${legal ? 'allows' : 'refuses'} ${from} -> ${to}`, () => {
        expect(canTransition(from, to)).toBe(legal);
      });
    }
  }

  it('has the five terminal statuses of the seeds and four active ones', () => {
    expect([...TERMINAL_STATUSES].sort()).toEqual(['cancelled', 'completed', 'expired', 'failed', 'incomplete']);
    expect([...ACTIVE_STATUSES].sort()).toEqual(['cancelling', 'in_progress', 'queued', 'requires_action']);
    for (const s of RUN_STATUSES) expect(isTerminal(s)).toBe(targetsOf(s).length === 0);
  });

  it('reaches every status from queued', () => {
    const seen = new Set<RunStatus>(['queued']);
    const frontier: RunStatus[] = ['queued'];
    while (frontier.length) for (const next of targetsOf(frontier.pop()!)) if (!seen.has(next)) (seen.add(next), frontier.push(next));
    expect([...seen].sort()).toEqual([...RUN_STATUSES].sort());
  });

  it('derives the SQL guard (sources of a target) from the same table', () => {
    for (const to of RUN_STATUSES) {
      expect([...sourcesOf(to)].sort()).toEqual(RUN_STATUSES.filter((from) => ALLOWED[from].includes(to)).sort());
    }
    expect(sourcesOf('queued')).toEqual(['requires_action']);
  });
});

import { describe, expect, it } from 'vitest';
import {
  ACTIVE_STATUSES,
  cancelMove,
  canTransition,
  isTerminal,
  LEASED_STATUSES,
  openStepsEnd,
  requiredData,
  RUN_STATUSES,
  sourcesOf,
  stampOf,
  TERMINAL_STATUSES,
  targetsOf,
  type RunStatus,
} from '../../src/domain/run-lifecycle.js';

// The lifecycle as the Assistants API's run object implies it, written out independently
// of the module so that a change to the module's records shows up here as a failing case.
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

  it('has five terminal statuses, the ones that go nowhere, and four active ones', () => {
    const goNowhere = RUN_STATUSES.filter((s) => ALLOWED[s].length === 0);
    expect([...TERMINAL_STATUSES].sort()).toEqual(['cancelled', 'completed', 'expired', 'failed', 'incomplete']);
    expect([...TERMINAL_STATUSES].sort()).toEqual([...goNowhere].sort());
    expect([...ACTIVE_STATUSES].sort()).toEqual(['cancelling', 'in_progress', 'queued', 'requires_action']);
    for (const s of RUN_STATUSES) expect(isTerminal(s), s).toBe(goNowhere.includes(s));
  });

  it('reaches a terminal status from every status', () => {
    for (const start of RUN_STATUSES) {
      const seen = new Set<RunStatus>([start]);
      const frontier: RunStatus[] = [start];
      while (frontier.length)
        for (const next of targetsOf(frontier.pop()!))
          if (!seen.has(next)) {
            seen.add(next);
            frontier.push(next);
          }
      expect(
        [...seen].some((s) => TERMINAL_STATUSES.includes(s)),
        start,
      ).toBe(true);
    }
  });

  it('reaches every status from queued', () => {
    const seen = new Set<RunStatus>(['queued']);
    const frontier: RunStatus[] = ['queued'];
    while (frontier.length)
      for (const next of targetsOf(frontier.pop()!))
        if (!seen.has(next)) {
          seen.add(next);
          frontier.push(next);
        }
    expect([...seen].sort()).toEqual([...RUN_STATUSES].sort());
  });

  it('derives the SQL guard (sources of a target) from the same table', () => {
    for (const to of RUN_STATUSES) {
      expect([...sourcesOf(to)].sort()).toEqual(RUN_STATUSES.filter((from) => ALLOWED[from].includes(to)).sort());
    }
    expect(sourcesOf('queued')).toEqual(['requires_action']);
  });
});

// What entering each status means, as clients of the Assistants API see it.
const ENTERING: Record<
  RunStatus,
  { stamps: string | null; steps: string | null; lease: boolean; requires: string | null; cancel: string }
> = {
  queued: { stamps: null, steps: null, lease: false, requires: null, cancel: 'cancelled' },
  in_progress: { stamps: 'startedAt', steps: null, lease: true, requires: null, cancel: 'cancelling' },
  requires_action: { stamps: null, steps: null, lease: false, requires: 'requiredAction', cancel: 'cancelled' },
  cancelling: { stamps: null, steps: null, lease: true, requires: null, cancel: 'unchanged' },
  cancelled: { stamps: 'cancelledAt', steps: 'cancelled/cancelledAt', lease: false, requires: null, cancel: 'refused' },
  failed: { stamps: 'failedAt', steps: 'failed/failedAt', lease: false, requires: 'lastError', cancel: 'refused' },
  completed: { stamps: 'completedAt', steps: 'completed/completedAt', lease: false, requires: null, cancel: 'refused' },
  incomplete: { stamps: null, steps: 'completed/completedAt', lease: false, requires: 'incompleteDetails', cancel: 'refused' },
  expired: { stamps: null, steps: 'expired/expiredAt', lease: false, requires: null, cancel: 'refused' },
};

describe('entering a status', () => {
  for (const status of RUN_STATUSES) {
    it(`${status}: its stamp, its open steps, its lease, its data, a cancel`, () => {
      const end = openStepsEnd(status);
      expect({
        stamps: stampOf(status),
        steps: end && `${end.status}/${end.stamp}`,
        lease: LEASED_STATUSES.includes(status),
        requires: requiredData(status),
        cancel: cancelMove(status),
      }).toEqual(ENTERING[status]);
    });
  }

  it('moves a cancelled run only where the table allows', () => {
    for (const status of RUN_STATUSES) {
      const move = cancelMove(status);
      if (move !== 'unchanged' && move !== 'refused') expect(canTransition(status, move), status).toBe(true);
    }
  });
});

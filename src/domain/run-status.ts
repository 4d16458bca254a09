/**
 * The run lifecycle, as data. This module is the only place that decides whether a
 * status change is legal; the SQL in the run store derives its
 * `WHERE status IN (...)` guard from {@link sourcesOf}, so the database enforces the
 * same table under concurrency.
 *
 * Statuses are the seeds' wire values (`in_progress`, not `IN_PROGRESS`); GraphQL maps
 * them to its enum names at the edge.
 */

export const RUN_STATUSES = [
  'queued',
  'in_progress',
  'requires_action',
  'cancelling',
  'cancelled',
  'failed',
  'completed',
  'incomplete',
  'expired',
] as const;

export type RunStatus = (typeof RUN_STATUSES)[number];

/**
 * Every status must appear as a key (the `satisfies` makes a missing one a type error).
 * A status with no outgoing edge is terminal.
 */
const TRANSITIONS = {
  queued: ['in_progress', 'cancelling', 'cancelled', 'failed', 'expired'],
  in_progress: ['requires_action', 'completed', 'incomplete', 'failed', 'cancelling', 'expired'],
  // Back to queued when the tool outputs are accepted: the engine picks it up again.
  requires_action: ['queued', 'cancelling', 'cancelled', 'failed', 'expired'],
  // A cancel is attempted, not guaranteed: a model call that already finished still wins.
  cancelling: ['cancelled', 'completed', 'incomplete', 'failed', 'expired'],
  cancelled: [],
  failed: [],
  completed: [],
  incomplete: [],
  expired: [],
} as const satisfies Record<RunStatus, readonly RunStatus[]>;

export function targetsOf(from: RunStatus): readonly RunStatus[] {
  return TRANSITIONS[from];
}

export function canTransition(from: RunStatus, to: RunStatus): boolean {
  return (TRANSITIONS[from] as readonly RunStatus[]).includes(to);
}

const SOURCES: Record<RunStatus, RunStatus[]> = Object.fromEntries(
  RUN_STATUSES.map((to) => [to, RUN_STATUSES.filter((from) => canTransition(from, to))]),
) as Record<RunStatus, RunStatus[]>;

/** The statuses a run may be in for a move to `to` to be legal. */
export function sourcesOf(to: RunStatus): readonly RunStatus[] {
  return SOURCES[to];
}

export const TERMINAL_STATUSES: readonly RunStatus[] = RUN_STATUSES.filter(
  (s) => TRANSITIONS[s].length === 0,
);

/** A thread may hold at most one run in one of these (enforced by a partial unique index). */
export const ACTIVE_STATUSES: readonly RunStatus[] = RUN_STATUSES.filter(
  (s) => TRANSITIONS[s].length > 0,
);

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function isActive(status: RunStatus): boolean {
  return !isTerminal(status);
}

/** The run timestamp that entering `to` stamps, if any. */
export function timestampStampedBy(
  to: RunStatus,
): 'startedAt' | 'cancelledAt' | 'failedAt' | 'completedAt' | null {
  switch (to) {
    case 'in_progress':
      return 'startedAt'; // only the first time: the store keeps an earlier value
    case 'cancelled':
      return 'cancelledAt';
    case 'failed':
      return 'failedAt';
    case 'completed':
      return 'completedAt';
    default:
      return null;
  }
}

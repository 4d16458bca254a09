/**
 * The run lifecycle, as data: one record per status says where a run may go from it and
 * what entering it means (the timestamp it stamps, how it ends the run's open steps,
 * whether a worker holds the run, what data the move must carry, what a cancel does).
 * Every rule about statuses is read from here: the run store's SQL derives its
 * `WHERE status IN (...)` guards and its status lists from these records, so the
 * database enforces the same table under concurrency.
 *
 * Statuses are the Assistants API's wire values (`in_progress`, not `IN_PROGRESS`);
 * GraphQL maps them to its enum names at the edge.
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

/** A run timestamp that entering a status stamps. */
export type RunStamp = 'startedAt' | 'cancelledAt' | 'failedAt' | 'completedAt';

/** How a run's open steps end when the run enters a status. */
export interface StepEnd {
  status: 'cancelled' | 'failed' | 'expired' | 'completed';
  stamp: 'cancelledAt' | 'failedAt' | 'expiredAt' | 'completedAt';
}

/** What a move to a status must carry besides the status. */
export type RequiredData = 'requiredAction' | 'lastError' | 'incompleteDetails';

export interface StatusRule {
  /** Where a run may go from this status; none: it is terminal. */
  readonly to: readonly RunStatus[];
  /** The timestamp entering this status stamps (`startedAt` only the first time). */
  readonly stamps: RunStamp | null;
  /** How the run's open steps end on entering this status; null: they stay as they are. */
  readonly endsOpenSteps: StepEnd | null;
  /** Whether a worker holds the run in this status, under its lease. */
  readonly holdsLease: boolean;
  /** What a move to this status must carry. */
  readonly requires: RequiredData | null;
  /** What cancelRun does to a run in this status: moves it, leaves it as it is, or refuses. */
  readonly onCancel: RunStatus | 'unchanged' | 'refused';
}

const END = {
  cancelled: { status: 'cancelled', stamp: 'cancelledAt' },
  failed: { status: 'failed', stamp: 'failedAt' },
  expired: { status: 'expired', stamp: 'expiredAt' },
  completed: { status: 'completed', stamp: 'completedAt' },
} as const satisfies Record<string, StepEnd>;

/** A terminal status: it goes nowhere, holds nothing, and cannot be cancelled. */
const terminal = (stamps: RunStamp | null, endsOpenSteps: StepEnd, requires: RequiredData | null = null): StatusRule => ({
  to: [],
  stamps,
  endsOpenSteps,
  holdsLease: false,
  requires,
  onCancel: 'refused',
});

/** Every status must appear (the `satisfies` makes a missing one a type error). */
export const LIFECYCLE = {
  queued: {
    to: ['in_progress', 'cancelling', 'cancelled', 'failed', 'expired'],
    stamps: null,
    endsOpenSteps: null,
    holdsLease: false,
    requires: null,
    onCancel: 'cancelled',
  },
  in_progress: {
    to: ['requires_action', 'completed', 'incomplete', 'failed', 'cancelling', 'expired'],
    stamps: 'startedAt',
    endsOpenSteps: null,
    holdsLease: true,
    requires: null,
    // The worker executing it aborts the model call and ends it cancelled.
    onCancel: 'cancelling',
  },
  requires_action: {
    // Back to queued when the tool outputs are accepted: the engine picks it up again.
    to: ['queued', 'cancelling', 'cancelled', 'failed', 'expired'],
    stamps: null,
    endsOpenSteps: null,
    holdsLease: false,
    requires: 'requiredAction',
    onCancel: 'cancelled',
  },
  cancelling: {
    // A cancel is attempted, not guaranteed: a model call that already finished still wins.
    to: ['cancelled', 'completed', 'incomplete', 'failed', 'expired'],
    stamps: null,
    endsOpenSteps: null,
    holdsLease: true,
    requires: null,
    onCancel: 'unchanged',
  },
  cancelled: terminal('cancelledAt', END.cancelled),
  failed: terminal('failedAt', END.failed, 'lastError'),
  completed: terminal('completedAt', END.completed),
  incomplete: terminal(null, END.completed, 'incompleteDetails'),
  expired: terminal(null, END.expired),
} as const satisfies Record<RunStatus, StatusRule>;

const rule = (status: RunStatus): StatusRule => LIFECYCLE[status];

export function targetsOf(from: RunStatus): readonly RunStatus[] {
  return rule(from).to;
}

export function canTransition(from: RunStatus, to: RunStatus): boolean {
  return rule(from).to.includes(to);
}

const SOURCES = new Map<RunStatus, readonly RunStatus[]>(
  RUN_STATUSES.map((to) => [to, RUN_STATUSES.filter((from) => canTransition(from, to))]),
);

/** The statuses a run may be in for a move to `to` to be legal. */
export function sourcesOf(to: RunStatus): readonly RunStatus[] {
  return SOURCES.get(to) ?? [];
}

export const TERMINAL_STATUSES: readonly RunStatus[] = RUN_STATUSES.filter((s) => rule(s).to.length === 0);

/** A thread may hold at most one run in one of these (enforced by a partial unique index). */
export const ACTIVE_STATUSES: readonly RunStatus[] = RUN_STATUSES.filter((s) => rule(s).to.length > 0);

/** The statuses in which a worker holds the run under its lease. */
export const LEASED_STATUSES: readonly RunStatus[] = RUN_STATUSES.filter((s) => rule(s).holdsLease);

export function isTerminal(status: RunStatus): boolean {
  return rule(status).to.length === 0;
}

/** The run timestamp that entering `to` stamps, if any. */
export function stampOf(to: RunStatus): RunStamp | null {
  return rule(to).stamps;
}

/** How a run's open steps end when it enters `to`, if they do. */
export function openStepsEnd(to: RunStatus): StepEnd | null {
  return rule(to).endsOpenSteps;
}

/** What a move to `to` must carry, if anything. */
export function requiredData(to: RunStatus): RequiredData | null {
  return rule(to).requires;
}

/** Where cancelRun takes a run in `status`: a status, 'unchanged', or 'refused'. */
export function cancelMove(status: RunStatus): RunStatus | 'unchanged' | 'refused' {
  return rule(status).onCancel;
}

/** Statuses as an SQL list (`'queued', 'in_progress'`): for index conditions and raw SQL. */
export function sqlList(statuses: readonly RunStatus[]): string {
  return statuses.map((status) => `'${status}'`).join(', ');
}

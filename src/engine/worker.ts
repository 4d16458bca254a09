/**
 * The worker: claims queued runs (the runs table is the queue) and executes each
 * (execution.ts) under a lease it renews; every write is guarded by the claim's lease
 * token, so that a worker that lost its claim can record nothing. It also takes over
 * runs whose worker died, and sweeps expired runs.
 *
 * Wake-ups: every committed transition reaches every process (see realtime/transport);
 * a queued run wakes the worker, a run moved on by someone else aborts its model call.
 * A slow poll backs this up.
 *
 * Database outages: only a model error fails a run. A read or write of the engine that
 * the database could not serve (a restart, a cut connection) is tried again, with
 * backoff, for as long as the run's lease holds; past it, the run is left to whichever
 * worker takes it over. The lease token makes every write safe to repeat: one that did
 * commit before its connection died matches nothing the second time.
 */
import { randomUUID } from 'node:crypto';
import { isDatabaseUnavailable, isTransientDatabaseError } from '../db/errors.js';
import type { RunRow } from '../db/schema.js';
import type { RunStatusEvent } from '../domain/run.js';
import { DEFAULTS } from '../config.js';
import { createLogger, type Logger } from '../log.js';
import { MAX_CLAIM, type RunEngine } from '../runs/index.js';
import type { ModelProvider } from './providers/provider.js';
import { RunExecution, type ClaimedRun } from './execution.js';
import { leaseTakeovers, observeClaim } from '../observability/metrics.js';
import { contextOf, failed, SpanKind, startSpan, tracingOn, withSpan } from '../observability/tracing.js';

/** How often the poll runs the housekeeping. */
const HOUSEKEEPING_MS = 60_000;

export interface WorkerOptions {
  runs: RunEngine;
  providers: ModelProvider[];
  /** Runs executed at once by this process. @default WORKER_CONCURRENCY's */
  concurrency?: number;
  /** How long a claim holds without renewal; renewed every third of it. @default LEASE_SECONDS's */
  leaseSeconds?: number;
  /** Fallback poll for work, lapsed leases and expired runs. @default 1000 */
  pollMs?: number;
  /** On stop, how long in-flight runs may take to finish before their claims are released. @default SHUTDOWN_GRACE_SECONDS's */
  shutdownGraceMs?: number;
  /** Cleaning up of old rows (e.g. idempotency keys), run from the poll about once a minute. */
  housekeeping?: () => Promise<unknown>;
  logger?: Logger;
}

interface InFlight extends ClaimedRun {
  done: Promise<void>;
  /**
   * Until when (this process's clock) the claim surely holds: the lease, counted from
   * before the statement that took or last renewed it was sent.
   */
  leaseUntil: number;
  /** The claim was given back (shutdown): nothing more is tried for the run here. */
  released: boolean;
}

/** The first wait before a read or write the database could not serve is tried again; it doubles up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 2000;

export class Worker {
  readonly id = `worker_${randomUUID()}`;
  private readonly inFlight = new Map<string, InFlight>();
  private running = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private claiming: Promise<void> | undefined;
  private wakeAgain = false;
  /**
   * Whether queued runs may be waiting that this worker has not tried to claim: a run was
   * queued, or the last claim took all it asked for. A run that ends frees a slot, and
   * only then is a claim worth its round trips. (Queued runs that a claim skipped because
   * another transaction held them are found by the next queued event or poll.)
   */
  private backlog = true;
  /** Claims, takeovers and reclaims, one at a time: each must know which runs the others began. */
  private claims: Promise<unknown> = Promise.resolve();
  /**
   * A claim or takeover failed on its way back, so it may have committed: runs may be held
   * in this worker's name that it does not execute. The next claim reclaims them first.
   */
  private unsure = false;
  private readonly concurrency: number;
  private readonly leaseSeconds: number;
  private readonly pollMs: number;
  private readonly shutdownGraceMs: number;
  private readonly log: Logger;
  private nextHousekeeping = 0;
  private readonly execution: RunExecution;

  constructor(private readonly options: WorkerOptions) {
    this.concurrency = options.concurrency ?? DEFAULTS.workerConcurrency;
    this.leaseSeconds = options.leaseSeconds ?? DEFAULTS.leaseSeconds;
    this.pollMs = options.pollMs ?? 1000;
    this.shutdownGraceMs = options.shutdownGraceMs ?? DEFAULTS.shutdownGraceSeconds * 1000;
    this.log = (options.logger ?? createLogger()).child({ workerId: this.id });
    this.execution = new RunExecution(options.runs, options.providers, this.log);
  }

  start(): void {
    this.running = true;
    // The slow path keeps its own clock: wake-ups under load must not postpone it.
    this.pollTimer = setInterval(() => {
      if (!this.polling) this.polling = this.poll().finally(() => (this.polling = undefined));
    }, this.pollMs);
    this.wake();
  }

  /**
   * Committed transitions, from any process: queued work wakes the worker; a run it is
   * executing that someone else moved on (a cancel, expiry) has its model call aborted.
   */
  onEvents(events: readonly RunStatusEvent[]): void {
    let queued = false;
    for (const e of events) {
      if (e.status === 'queued') queued = true;
      else if (e.status !== 'in_progress') {
        const flight = this.inFlight.get(e.runId);
        // Only a change made after this claim counts: a late event of an earlier turn does not.
        if (flight && e.version > flight.run.version) flight.abort.abort(new Error('stopped'));
      }
    }
    if (queued) {
      this.backlog = true;
      this.wake();
    }
  }

  /**
   * Stops claiming; gives in-flight runs the grace period to finish, then releases their
   * claims (another worker takes them over at once) and abandons them.
   */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.pollTimer);
    await this.polling;
    await this.claiming;
    const all = [...this.inFlight.values()];
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.shutdownGraceMs)));
    const outcome = await Promise.race([Promise.allSettled(all.map((f) => f.done)), graceOver]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      for (const flight of this.inFlight.values()) {
        flight.released = true;
        flight.abort.abort(new Error('shutdown'));
        await this.options.runs.releaseLease(flight.run.id, flight.leaseToken).catch(() => {});
      }
    }
  }

  /** There may be work: claim now (coalesced with a claim under way). */
  wake(): void {
    if (!this.running) return;
    if (this.claiming) {
      this.wakeAgain = true;
      return;
    }
    this.claiming = this.claimLoop()
      .catch((error) => this.log.error({ err: error }, 'claiming runs failed unexpectedly'))
      .finally(() => {
        this.claiming = undefined;
      });
  }

  /**
   * The slow path, once per poll: expire due runs, take over runs whose worker's lease
   * lapsed (neither is latency-critical), then look for work.
   */
  private async poll(): Promise<void> {
    const { runs } = this.options;
    try {
      if (this.options.housekeeping && Date.now() >= this.nextHousekeeping) {
        this.nextHousekeeping = Date.now() + HOUSEKEEPING_MS;
        await this.options.housekeeping();
      }
      await runs.expireDue();
      if (this.running && this.inFlight.size < this.concurrency) {
        await this.oneAtATime(async () => {
          const free = this.concurrency - this.inFlight.size;
          if (free <= 0) return;
          const from = Date.now();
          const taken = await this.noting(runs.takeOver(this.id, free, this.leaseSeconds));
          leaseTakeovers.inc(taken.length);
          // Stopping meanwhile: give them straight back rather than start them.
          for (const run of taken) {
            if (this.running) this.begin(run, from);
            else if (run.leaseToken) await runs.releaseLease(run.id, run.leaseToken);
          }
        });
      }
    } catch (error) {
      this.logFailure(error, 'sweeping runs failed; retrying at the next poll');
    }
    this.wake();
  }

  private async claimLoop(): Promise<void> {
    const { runs } = this.options;
    do {
      this.wakeAgain = false;
      if (this.inFlight.size >= this.concurrency) return;
      let full: boolean;
      try {
        full = await this.oneAtATime(async () => {
          if (this.unsure) await this.reclaim();
          const free = this.concurrency - this.inFlight.size;
          if (free <= 0) return false;
          // One claim takes at most MAX_CLAIM runs, whatever the free slots.
          const asked = Math.min(free, MAX_CLAIM);
          const from = Date.now();
          const claimed = await this.noting(runs.claim(this.id, asked, this.leaseSeconds));
          for (const run of claimed) observeClaim(run);
          for (const run of claimed) this.begin(run, from);
          return claimed.length === asked;
        });
      } catch (error) {
        this.logFailure(error, 'claiming runs failed; retrying at the next poll');
        return;
      }
      this.backlog = full;
      if (this.backlog) this.wakeAgain = true; // there may be more
    } while (this.wakeAgain && this.running);
  }

  /** Runs `work` after every claim, takeover and reclaim begun before it has ended. */
  private oneAtATime<T>(work: () => Promise<T>): Promise<T> {
    const result = this.claims.then(work);
    this.claims = result.catch(() => {});
    return result;
  }

  /** A claim or takeover: one whose answer a lost connection kept from us leaves us unsure. */
  private noting(claim: Promise<RunRow[]>): Promise<RunRow[]> {
    return claim.catch((error: unknown) => {
      if (isDatabaseUnavailable(error)) this.unsure = true;
      throw error;
    });
  }

  /** Starts the runs held in this worker's name that it is not executing (see {@link unsure}). */
  private async reclaim(): Promise<void> {
    const from = Date.now();
    const orphans = await this.options.runs.reclaimOwn(this.id, [...this.inFlight.keys()], this.leaseSeconds);
    this.unsure = false;
    for (const run of orphans) this.begin(run, from);
    if (orphans.length > 0) this.log.info({ runs: orphans.length }, 'reclaimed runs whose claim was answered on a lost connection');
  }

  /** @param claimedFrom when the statement that took the claim was sent (the lease counts from no earlier). */
  private begin(run: RunRow, claimedFrom: number): void {
    const leaseToken = run.leaseToken;
    if (!leaseToken) throw new Error(`claimed run ${run.id} has no lease token`);
    // Our own lapsed claim, taken back: the old execution can no longer write (its token
    // is stale) and will end by itself; let it, and leave this run to the next poll.
    if (this.inFlight.has(run.id)) {
      void this.options.runs.releaseLease(run.id, leaseToken).catch(() => {});
      return;
    }
    const flight: InFlight = {
      run,
      leaseToken,
      abort: new AbortController(),
      done: Promise.resolve(),
      leaseUntil: claimedFrom + this.leaseSeconds * 1000,
      released: false,
    };
    const renewal = setInterval(
      () => {
        const sent = Date.now();
        this.options.runs.renewLease(run.id, leaseToken, this.leaseSeconds).then(
          (current) => {
            if (current) flight.leaseUntil = sent + this.leaseSeconds * 1000;
            // Lost the claim, or the run was stopped and the notice went astray.
            if (!current || current.status === 'cancelling') flight.abort.abort(new Error('stopped'));
          },
          (error) => this.logFailure(error, 'renewing a lease failed', run.id),
        );
      },
      (this.leaseSeconds * 1000) / 3,
    );
    const execute = () => this.execution.execute(flight, (work) => this.untilServed(flight, work));
    flight.done = (tracingOn ? inRunSpan(run, execute) : execute())
      .catch((error) =>
        isTransientDatabaseError(error)
          ? this.log.warn(
              { err: error, runId: run.id },
              'the database stayed out of reach as long as the lease held; the run is left to be taken over',
            )
          : this.log.error({ err: error, runId: run.id }, 'run execution failed unexpectedly'),
      )
      .finally(() => {
        clearInterval(renewal);
        if (this.inFlight.get(run.id)?.leaseToken === leaseToken) this.inFlight.delete(run.id);
        if (this.backlog) this.wake();
      });
    this.inFlight.set(run.id, flight);
  }

  /**
   * Runs one of a run's reads or writes until the database serves it: an error that
   * repeating may cure (see isTransientDatabaseError) is waited out, with backoff, while
   * the claim holds. Past the lease (or once the claim was given back) the error is
   * thrown: the run is then another worker's to take over.
   */
  private async untilServed<T>(flight: InFlight, work: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        const wait = Math.min(RETRY_FIRST_MS * 2 ** attempt, RETRY_MAX_MS) * (0.5 + Math.random() / 2);
        if (!isTransientDatabaseError(error) || flight.released || Date.now() + wait >= flight.leaseUntil) throw error;
        if (attempt === 0) this.logFailure(error, 'the database could not serve a run; trying again while its lease holds', flight.run.id);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /** A failure the worker recovers from: a warning when the database is out of reach, else an error. */
  private logFailure(error: unknown, message: string, runId?: string): void {
    const fields = runId ? { err: error, runId } : { err: error };
    if (isDatabaseUnavailable(error)) this.log.warn(fields, message);
    else this.log.error(fields, message);
  }
}

/**
 * The run's execution in a span of its own, a child of the request that created the run
 * (its stored traceparent): one trace from createRun to the answer, across processes.
 */
async function inRunSpan(run: RunRow, execute: () => Promise<void>): Promise<void> {
  const span = startSpan(
    'run execute',
    { 'runway.run.id': run.id, 'runway.run.model': run.model, 'runway.run.status': run.status },
    SpanKind.CONSUMER,
    contextOf({ traceparent: run.traceparent }),
  );
  try {
    await withSpan(span, execute);
  } catch (error) {
    failed(span, error);
    throw error;
  } finally {
    span.end();
  }
}

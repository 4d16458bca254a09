/**
 * The process's Prometheus metrics (prom-client, the Node client the Prometheus project
 * lists). One registry per process: a scrape target is a process, and counters must not
 * reset when a spec builds a second app.
 *
 * Cost on the hot paths: what moves with every request or event is a plain number here,
 * or a histogram child bound once per label set (a map lookup and an array walk); nothing
 * waits on anything. What needs a query (runs by status, the queue) or a walk (sockets,
 * subscriptions) is read at scrape time from the app's {@link ScrapeSource}.
 *
 * Label values come from small fixed sets (statuses, providers, REST route patterns,
 * HTTP status codes); the one a client chooses, a GraphQL operation's name, is capped
 * (see {@link operationLabel}).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { decodeTime } from 'ulid';

export const registry = new Registry();
// Process CPU, memory, event loop delay, GC: what tells a slow process from a slow database.
collectDefaultMetrics({ register: registry });

/** What an app answers at scrape time (see app.ts). */
export interface ScrapeSource {
  /** Active (non-terminal) runs by status and model. */
  activeRuns(): Promise<{ status: string; model: string; count: number }[]>;
  /** Queued runs, and the age in seconds of the oldest (0 when none). */
  queue(): Promise<{ depth: number; oldestAgeSeconds: number }>;
  websocketsOpen(): number;
  subscriptionsOpen(): number;
}

/** The apps of this process (one in production; specs may build more, on one database). */
const sources = new Set<ScrapeSource>();

export function addScrapeSource(source: ScrapeSource): () => void {
  sources.add(source);
  return () => sources.delete(source);
}

/** The latest app: every app of a process reads the same database. */
const latest = () => [...sources].at(-1);

const registers = [registry];

new Gauge({
  name: 'runway_runs_active',
  help: 'Runs not yet ended, by status and model (read at scrape time).',
  labelNames: ['status', 'model'] as const,
  registers,
  async collect() {
    this.reset();
    for (const row of (await latest()?.activeRuns()) ?? []) this.set({ status: row.status, model: row.model }, row.count);
  },
});

// One query answers both queue gauges: the first collected asks, the second reads its answer.
let queueAnswer: Promise<{ depth: number; oldestAgeSeconds: number }> | undefined;
const queueNow = () =>
  (queueAnswer ??= (latest()?.queue() ?? Promise.resolve({ depth: 0, oldestAgeSeconds: 0 })).finally(() =>
    setImmediate(() => (queueAnswer = undefined)),
  ));

new Gauge({
  name: 'runway_queue_depth',
  help: 'Runs waiting for a worker (status queued).',
  registers,
  async collect() {
    this.set((await queueNow()).depth);
  },
});

new Gauge({
  name: 'runway_queue_oldest_age_seconds',
  help: 'How long the oldest queued run has waited since it was created (0 when the queue is empty).',
  registers,
  async collect() {
    this.set((await queueNow()).oldestAgeSeconds);
  },
});

/** A gauge of what the process's apps hold now, summed over them at scrape time. */
function summedGauge(name: string, help: string, count: (source: ScrapeSource) => number): void {
  new Gauge({
    name,
    help,
    registers,
    collect() {
      let n = 0;
      for (const s of sources) n += count(s);
      this.set(n);
    },
  });
}

summedGauge('runway_websockets_open', 'graphql-ws websockets open on this process.', (s) => s.websocketsOpen());
summedGauge('runway_subscriptions_open', "Subscriptions (GraphQL and REST streams) reading this process's event bus.", (s) =>
  s.subscriptionsOpen(),
);

/** Plain counts bumped on the hottest paths (every event to every subscriber), read at scrape time. */
export const hot = { eventsDelivered: 0, subscriptionsLagged: 0 };

new Counter({
  name: 'runway_events_delivered_total',
  help: "Events handed to subscribers' queues (one per event per subscriber).",
  registers,
  collect() {
    this.reset();
    this.inc(hot.eventsDelivered);
  },
});

new Counter({
  name: 'runway_subscriptions_lagged_total',
  help: 'Subscriptions cut off because their reader fell SUBSCRIPTION_BUFFER events behind (SUBSCRIPTION_LAGGED).',
  registers,
  collect() {
    this.reset();
    this.inc(hot.subscriptionsLagged);
  },
});

export const runTransitions = new Counter({
  name: 'runway_run_transitions_total',
  help: 'Run status changes committed by this process, by the status moved to.',
  labelNames: ['to'] as const,
  registers,
});

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const SLOW_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

const queueWait = new Histogram({
  name: 'runway_run_queue_wait_seconds',
  help: 'From a run created to a worker claiming it (queued -> in_progress, first claim).',
  buckets: [0.005, ...SLOW_BUCKETS],
  registers,
});

/** A run this worker claimed: its first claim's wait, measured from its id's creation time (ms). */
export function observeClaim(run: { id: string; version: number }, now = Date.now()): void {
  // Version 2: created (1), then this claim. A run queued again after its tool outputs is not counted.
  if (run.version !== 2) return;
  const created = decodeTime(run.id.slice(run.id.indexOf('_') + 1));
  queueWait.observe(Math.max(0, now - created) / 1000);
}

export const leaseTakeovers = new Counter({
  name: 'runway_lease_takeovers_total',
  help: "Runs this process's worker took over from a worker whose lease lapsed.",
  registers,
});

export const runsExpired = new Counter({
  name: 'runway_runs_expired_total',
  help: "Runs this process's sweeper expired (expiresAt passed).",
  registers,
});

export const modelCalls = new Histogram({
  name: 'runway_model_call_duration_seconds',
  help: 'Model calls, by provider and outcome (ok, error, cancelled).',
  labelNames: ['provider', 'outcome'] as const,
  buckets: SLOW_BUCKETS,
  registers,
});

export const modelErrors = new Counter({
  name: 'runway_model_call_errors_total',
  help: "Model calls that failed, by provider and the run's error code.",
  labelNames: ['provider', 'code'] as const,
  registers,
});

const httpRequests = new Histogram({
  name: 'runway_http_request_duration_seconds',
  help: 'HTTP requests, by API (graphql, rest, other), route (REST: the path pattern), method and status.',
  labelNames: ['api', 'route', 'method', 'status'] as const,
  buckets: LATENCY_BUCKETS,
  registers,
});

const graphqlOperations = new Histogram({
  name: 'runway_graphql_operation_duration_seconds',
  help: 'GraphQL operations executed (HTTP and websockets; a subscription until its first result), by name and type.',
  labelNames: ['operation', 'type'] as const,
  buckets: LATENCY_BUCKETS,
  registers,
});

/**
 * Connections in use, by pool: plain numbers on the statement path, read into the gauge
 * when it is scraped (a labelled gauge's inc and dec, twice per statement, were ~0.5% of
 * a single-row read's CPU).
 */
const busyByPool = new Map<string, { count: number }>();

// Registered: it is read by the scrape, through `registers`.
new Gauge({
  name: 'runway_db_connections_busy',
  help: 'Database connections in use (a statement or a transaction), by pool (gateway, engine).',
  labelNames: ['pool'] as const,
  registers,
  collect() {
    for (const [pool, busy] of busyByPool) this.labels(pool).set(busy.count);
  },
});

/** The count of a pool's connections in use, to raise when one is taken and lower when it is given back. */
export function busyConnections(pool: string): { inc(): void; dec(): void } {
  let busy = busyByPool.get(pool);
  if (!busy) busyByPool.set(pool, (busy = { count: 0 }));
  const counted = busy;
  return {
    inc: () => void counted.count++,
    dec: () => void counted.count--,
  };
}

export const dbPoolSize = new Gauge({
  name: 'runway_db_pool_size',
  help: 'Database connections a pool may open, by pool.',
  labelNames: ['pool'] as const,
  registers,
});

/** Histogram children, bound once per label set: an observation is then a bucket walk. */
type Observer = { observe(value: number): void };
const bound = new Map<string, Observer>();
const MAX_BOUND = 2000;

function child(histogram: Histogram<string>, key: string, labels: Record<string, string>): Observer {
  let c = bound.get(key);
  if (!c) {
    c = histogram.labels(labels);
    if (bound.size < MAX_BOUND) bound.set(key, c);
  }
  return c;
}

/** A request served: `route` is a REST pattern or one of the fixed paths, never a raw path. */
export function observeHttp(api: string, route: string, method: string, status: number, seconds: number): void {
  child(httpRequests, `h ${api} ${route} ${method} ${status}`, { api, route, method, status: String(status) }).observe(seconds);
}

/** Distinct operation names labelled; others count as `other` (clients choose names). */
export const MAX_OPERATION_NAMES = 200;
const operationNames = new Set<string>();

/** The label of an operation name: itself while fewer than {@link MAX_OPERATION_NAMES} are known. */
export function operationLabel(name: string | null | undefined): string {
  if (!name) return 'anonymous';
  if (operationNames.has(name)) return name;
  if (operationNames.size >= MAX_OPERATION_NAMES || name.length > 100) return 'other';
  operationNames.add(name);
  return name;
}

export function observeOperation(name: string | null | undefined, type: string, seconds: number): void {
  const operation = operationLabel(name);
  child(graphqlOperations, `g ${operation} ${type}`, { operation, type }).observe(seconds);
}

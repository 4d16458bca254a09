/**
 * Structured logs (pino, one JSON object per line). Secrets never reach a log line:
 * whatever sits at an authorization or key path is redacted wherever it appears. Nor does
 * what a client sent: a failed statement is logged without the values it carried.
 */
import { pino, stdSerializers, type DestinationStream, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger };

export const REDACTED_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'connectionParams.authorization',
  '*.connectionParams.authorization',
  'apiKey',
  '*.apiKey',
  'key',
  '*.key',
];

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError },
      base: { pid: process.pid },
    },
    options.destination,
  );
}

/** How lines look: JSON for machines, or one readable line each (pino-pretty) for a person at a terminal. */
export type LogFormat = 'pretty' | 'json';

/**
 * Readable lines for a person: standard output is a terminal, outside production, unless
 * LOG_FORMAT says otherwise. Anything read by a program (a file, a pipe, a log collector,
 * a container runtime) keeps JSON, the same in every environment.
 */
export function logFormat(env: { isTTY: boolean; production: boolean; setting?: 'auto' | LogFormat }): LogFormat {
  if (env.setting && env.setting !== 'auto') return env.setting;
  return env.isTTY && !env.production ? 'pretty' : 'json';
}

/** Standard output in the given format: see stdoutDestination (JSON) and prettyDestination. */
export function stdoutFor(format: LogFormat): DestinationStream {
  return format === 'pretty' ? prettyDestination() : stdoutDestination();
}

/**
 * Readable lines on standard output, written as they come (sync): at a terminal a person
 * reads them, nothing is under load, and a line printed with console output beside them
 * stays in order.
 */
export function prettyDestination(): DestinationStream {
  return pinoPretty({ destination: 1, sync: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true });
}

/**
 * Standard output, written in batches: a line waits at most {@link LOG_BATCH_MS} for the
 * lines logged after it, and they are handed to the kernel together, in one write (at
 * once when they reach {@link LOG_BATCH_BYTES}). A write costs about the same whatever its
 * length (16-30 µs of the event loop's time for one to a file, measured here), and written
 * one at a time the access lines took about a tenth of a REST single-row read's CPU in a
 * 30 s profile, batched by event-loop turn about as much: under load a turn answers one or
 * two requests.
 *
 * The batch is written synchronously, as pino's default destination writes: an
 * asynchronous write still in flight when the process exits can be neither awaited nor
 * finished, and what was logged after it was written before it (lines lost or out of
 * order at exit; a spec exits with 1,000 lines logged in its last turn). At exit, what is
 * left is written then. (`fd`: another descriptor than standard output.)
 */
export function stdoutDestination(fd = 1): DestinationStream {
  const out = pino.destination({ dest: fd, sync: true });
  let batch = '';
  let timer: NodeJS.Timeout | undefined;
  const release = () => {
    clearTimeout(timer);
    timer = undefined;
    const lines = batch;
    batch = '';
    if (lines) out.write(lines);
  };
  process.once('exit', () => {
    release();
    out.flushSync();
  });
  return {
    write(line: string) {
      batch += line;
      if (batch.length >= LOG_BATCH_BYTES) release();
      // Not holding the process up: whatever is left at exit is written then.
      else timer ??= setTimeout(release, LOG_BATCH_MS).unref();
    },
  };
}

/** How long a line may wait for others to share its write. */
export const LOG_BATCH_MS = 20;
/** A batch this long is written at once. */
export const LOG_BATCH_BYTES = 64 * 1024;

/**
 * The logger for access lines: the same destination and level, without redaction. An
 * access line holds only what the server itself sets (request id, method, path, status,
 * time), never a header or a body, and redaction cost more than writing the line
 * (13 µs against 5 µs a line, measured).
 */
export function accessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: [] });
}

/**
 * Properties of database errors that hold values a statement carried: drizzle's `params`,
 * postgres.js's `parameters`, PGlite's `params`, and PostgreSQL's `detail` and `where`
 * (`Key (...)=(...)`, or the JSON text it could not read).
 */
const VALUE_PROPERTIES = new Set(['params', 'parameters', 'detail', 'where', 'internalQuery', 'queryOptions']);

interface ErrorLike {
  message?: unknown;
  query?: unknown;
  params?: unknown;
  originalError?: unknown;
  cause?: unknown;
  path?: unknown;
}

/**
 * pino's error serializer, without the values of a failed statement: drizzle writes them
 * into its error's message (`Failed query: <sql>\nparams: <values>`), message text and
 * metadata among them. The statement and PostgreSQL's reason stay. A GraphQL error that
 * wraps a resolver's (what yoga logs) is logged as that error, with its path.
 */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const wrapper = err as ErrorLike;
  const original = wrapper.originalError instanceof Error ? wrapper.originalError : err;
  const serialized = stdSerializers.err(original) as unknown as Record<string, unknown>;
  if (original !== err && wrapper.path !== undefined) serialized['path'] = wrapper.path;
  const values: string[] = [];
  for (let e = original as ErrorLike | undefined, depth = 0; e && depth < 5; e = e.cause as ErrorLike | undefined, depth++) {
    if (typeof e.query === 'string' && Array.isArray(e.params) && typeof e.message === 'string') {
      const suffix = `\nparams: ${e.params}`;
      if (e.message.endsWith(suffix)) values.push(suffix);
    }
  }
  for (const key of ['message', 'stack'] as const) {
    const text = serialized[key];
    if (typeof text === 'string') serialized[key] = values.reduce((kept, value) => kept.split(value).join(''), text);
  }
  return Object.fromEntries(Object.entries(serialized).filter(([key]) => !VALUE_PROPERTIES.has(key)));
}

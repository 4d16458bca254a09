/**
 * Structured logs (pino, one JSON object per line). Secrets never reach a log line:
 * whatever sits at an authorization or key path is redacted wherever it appears.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

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

/**
 * @param options.destination where lines go. @default stdout, written asynchronously:
 * lines that pile up while a write is in flight leave together, instead of one write
 * system call per request on the hot path; pino flushes what is left when the process
 * exits.
 */
export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

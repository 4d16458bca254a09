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

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    options.destination,
  );
}

/**
 * What a request body must be before anything reads it: of a known length (411), no
 * longer than MAX_BODY_BYTES (413), and UTF-8 (415). Each API answers a refusal in its
 * own dialect (server.ts picks it by path).
 */
import type { IncomingMessage } from 'node:http';
import type { ErrorCode } from '../domain/error-codes.js';

/**
 * A body's charset, when its Content-Type names one other than UTF-8: bodies are read as
 * UTF-8 (JSON's only encoding, RFC 8259), so any other would be read wrong.
 */
export function foreignCharset(contentType: string | undefined): string | undefined {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType ?? '')?.[1];
  return charset === undefined || /^utf-?8$/i.test(charset) ? undefined : charset;
}

/** Why a body is refused, before it is read. */
export interface BodyRefusal {
  code: ErrorCode;
  message: string;
}

const refused = (code: ErrorCode, message: string): BodyRefusal => ({ code, message });

/** The refusal of a POST whose body is not acceptable, or undefined. */
export function bodyLimits(maxBodyBytes: number) {
  return function refusal(req: IncomingMessage): BodyRefusal | undefined {
    if (req.method !== 'POST') return undefined;
    const length = req.headers['content-length'];
    // A body of unknown length could be endless: GraphQL and OpenAI clients always send one.
    if (length === undefined) return refused('LENGTH_REQUIRED', 'A Content-Length header is required.');
    if (Number(length) > maxBodyBytes) return refused('PAYLOAD_TOO_LARGE', `Request bodies are limited to ${maxBodyBytes} bytes.`);
    const charset = foreignCharset(req.headers['content-type']);
    if (charset !== undefined) return refused('UNSUPPORTED_MEDIA_TYPE', `Request bodies must be UTF-8, not '${charset.slice(0, 40)}'.`);
    return undefined;
  };
}

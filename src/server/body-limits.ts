/**
 * What a request body must be before anything reads it: of a known length (411), no
 * longer than MAX_BODY_BYTES (413), and UTF-8 (415).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendError } from './http-answers.js';

/**
 * A body's charset, when its Content-Type names one other than UTF-8: bodies are read as
 * UTF-8 (JSON's only encoding, RFC 8259), so any other would be read wrong.
 */
export function foreignCharset(contentType: string | undefined): string | undefined {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType ?? '')?.[1];
  return charset === undefined || /^utf-?8$/i.test(charset) ? undefined : charset;
}

/** Refuses a POST whose body is not acceptable; true if it did (the answer is written). */
export function bodyLimits(maxBodyBytes: number) {
  return function refused(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST') return false;
    const length = req.headers['content-length'];
    // A body of unknown length could be endless: GraphQL clients always send one.
    if (length === undefined) {
      sendError(res, 'LENGTH_REQUIRED', 'A Content-Length header is required.');
      return true;
    }
    if (Number(length) > maxBodyBytes) {
      sendError(res, 'PAYLOAD_TOO_LARGE', `Request bodies are limited to ${maxBodyBytes} bytes.`);
      return true;
    }
    const charset = foreignCharset(req.headers['content-type']);
    if (charset !== undefined) {
      sendError(res, 'UNSUPPORTED_MEDIA_TYPE', `Request bodies must be UTF-8, not '${charset.slice(0, 40)}'.`);
      return true;
    }
    return false;
  };
}

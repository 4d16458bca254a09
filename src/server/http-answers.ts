/**
 * The answers the node handler writes itself, before (or instead of) GraphQL: the same
 * `{ errors: [{ message, extensions: { code } }] }` shape a GraphQL answer has, so a client
 * reads every refusal the same way.
 */
import type { ServerResponse } from 'node:http';
import { ERROR_CODES, type ErrorCode } from '../domain/error-codes.js';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** A refusal with its code (and any extensions besides), with the status the catalogue gives the code. */
export function sendError(res: ServerResponse, code: ErrorCode, message: string, extensions?: Record<string, unknown>): void {
  sendJson(res, ERROR_CODES[code].status, { errors: [{ message, extensions: { code, ...extensions } }] });
}

/**
 * Handing yoga a request whose body the node handler has read already (to try the fast
 * path first): yoga gets it as a fetch Request, and its answer is streamed back (SSE
 * included), at the pace the client reads.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext, RunwayYoga } from './yoga-context.js';

/** The client hung up before its body ended: nobody is left to answer. */
export class ClientGoneError extends Error {
  constructor() {
    super('the client hung up before the end of the body');
  }
}

/**
 * The request body as text (its size was checked against Content-Length already).
 * Rejects when the client hangs up before the end, so no request waits forever.
 */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    // Node reports a hang-up as an 'aborted' error, then a close: either way, gone.
    req.once('error', () => reject(new ClientGoneError()));
    req.once('close', () => {
      if (!req.complete) reject(new ClientGoneError());
    });
  });
}

/** yoga's answer to a request whose body was already read, streamed (SSE included). */
export async function sendThroughYoga(
  yoga: RunwayYoga,
  req: IncomingMessage,
  res: ServerResponse,
  body: string,
  context: RequestContext,
): Promise<void> {
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  const response = await yoga.fetch(
    `http://${req.headers.host ?? 'localhost'}${req.url ?? yoga.graphqlEndpoint}`,
    { method: 'POST', headers, body, signal: abort.signal },
    context,
  );
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (!response.body) return void res.end();
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
    }
  } finally {
    res.end();
  }
}

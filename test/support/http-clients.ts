/**
 * GraphQL clients over HTTP on a thread of their own: each client sends its requests one
 * after the other, in a loop, and every answer is timed. Tests that time one group of
 * clients while another floods the server run each group on its own thread, so that
 * neither group's work delays the other's answers in one event loop (as clients on
 * different machines would be).
 */
import { Worker } from 'node:worker_threads';

export interface ClientRequest {
  query: string;
  variables?: Record<string, unknown>;
}

export interface TimedAnswer {
  ms: number;
  /** 'ok', the first error's `extensions.code`, or 'hung' (no answer within `hungMs`). */
  code: string;
  retryAfterSeconds?: number;
}

export interface ClientsOptions {
  url: string;
  /** Sent as `Authorization: Bearer`. */
  apiKey: string;
  /** One entry per client: the requests it sends in turn, round and round. */
  clients: ClientRequest[][];
  /** The clients stop sending after this (or when `stop` is called). */
  durationMs?: number;
  /** @default 5000 */
  hungMs?: number;
  /** A pause between a client's answer and its next request. @default 0 */
  pauseMs?: number;
}

// Plain JavaScript: a worker evaluates it as it is.
const CLIENTS_JS = `
const { parentPort, workerData } = require('node:worker_threads');
const { Agent, request } = require('node:http');
const { url, apiKey, clients, durationMs, hungMs, pauseMs } = workerData;
// Kept-alive connections: a request costs less than with fetch.
const agent = new Agent({ keepAlive: true, maxSockets: 1000 });
let stopped = false;
parentPort.on('message', () => (stopped = true));
if (durationMs !== undefined) setTimeout(() => (stopped = true), durationMs);
function send(r) {
  const start = performance.now();
  const payload = JSON.stringify({ query: r.query, variables: r.variables || {} });
  return new Promise((resolve) => {
    const done = (code, retryAfterSeconds) => resolve({ ms: performance.now() - start, code, retryAfterSeconds });
    const req = request(url, {
      method: 'POST', agent, timeout: hungMs,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), authorization: 'Bearer ' + apiKey },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => {
        const error = (JSON.parse(text).errors || [])[0];
        done(error ? String(error.extensions && error.extensions.code) : 'ok', error && error.extensions && error.extensions.retryAfterSeconds);
      });
      res.on('error', () => done('hung'));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done('hung'));
    req.end(payload);
  });
}
Promise.all(clients.map(async (requests) => {
  const answers = [];
  for (let i = 0; !stopped; i++) {
    answers.push(await send(requests[i % requests.length]));
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
  }
  return answers;
})).then((answers) => {
  agent.destroy();
  parentPort.postMessage(answers.flat());
});
`;

/** Starts the clients; `answers` settles once every client has stopped and has its last answer. */
export function startClients(options: ClientsOptions): { stop(): void; answers: Promise<TimedAnswer[]> } {
  const worker = new Worker(CLIENTS_JS, { eval: true, workerData: { hungMs: 5000, pauseMs: 0, ...options } });
  const answers = new Promise<TimedAnswer[]>((resolve, reject) => {
    worker.once('message', (answers: TimedAnswer[]) => resolve(answers));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the clients' thread exited (${code}) without answers`)));
  });
  return {
    stop: () => worker.postMessage('stop'),
    answers: answers.finally(() => void worker.terminate()),
  };
}

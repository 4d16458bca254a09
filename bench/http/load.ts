/**
 * One autocannon measurement, in a process of its own so that the load generator does
 * not share an event loop with anything measured. Prints one JSON line.
 *
 *   node --import tsx bench/http/load.ts '{"url":...,"scenario":"run","seconds":5,"connections":50,"idsFile":...}'
 *   node --import tsx bench/http/load.ts '{"url":...,"scenario":"create",...,"threadsFile":...,"offset":0,"assistantId":...}'
 *   node --import tsx bench/http/load.ts '{"origin":...,"scenario":"rest-run",...,"idsFile":...}'
 *
 * Reads pick a random [threadId, runId] pair per request. create takes the next thread of
 * its list for every request, so no thread is asked twice (a thread holds one active run
 * at a time), and checks every answer is a queued run: a failed createRun is still HTTP 200.
 * REST reads are GETs of a path made per request, sent to the origin.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { body, isRestRead, REST_READS, type Ids, type RestRead, type Scenario } from './operations.js';

const args = JSON.parse(process.argv[2]!) as {
  url: string;
  origin: string;
  key?: string;
  scenario: Scenario | RestRead;
  seconds: number;
  connections: number;
  idsFile?: string;
  threadsFile?: string;
  offset?: number;
  assistantId?: string;
};

let used = 0;
let exhausted = false;
let failed = 0;
let pick: () => Ids;
let onResponse: ((status: number, body: string) => void) | undefined;
if (args.scenario === 'create') {
  const threads = JSON.parse(readFileSync(args.threadsFile!, 'utf8')) as string[];
  const assistantId = args.assistantId!;
  pick = () => {
    const i = args.offset! + used++;
    // Out of threads: the repeat fails as THREAD_HAS_ACTIVE_RUN, and the run is reported void.
    if (i >= threads.length) exhausted = true;
    return { threadId: threads[Math.min(i, threads.length - 1)]!, assistantId };
  };
  onResponse = (status, text) => {
    if (status !== 200 || !text.includes('"status":"QUEUED"')) failed++;
  };
} else {
  const pairs = JSON.parse(readFileSync(args.idsFile!, 'utf8')) as [string, string][];
  pick = () => {
    const [threadId, runId] = pairs[Math.floor(Math.random() * pairs.length)]!;
    return { threadId, runId };
  };
}

const scenario = args.scenario;
const auth = args.key ? { authorization: `Bearer ${args.key}` } : {};
const request: autocannon.Request = isRestRead(scenario)
  ? { setupRequest: (req) => ({ ...req, path: REST_READS[scenario](pick()) }) }
  : { setupRequest: (req) => ({ ...req, body: body(scenario, pick()) }), ...(onResponse ? { onResponse } : {}) };
const result = await autocannon({
  url: isRestRead(scenario) ? args.origin : args.url,
  method: isRestRead(scenario) ? 'GET' : 'POST',
  connections: args.connections,
  duration: args.seconds,
  // What the official client sends with a GET (its other headers name the client and platform).
  headers: isRestRead(scenario)
    ? { accept: 'application/json', 'openai-beta': 'assistants=v2', ...auth }
    : { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...auth },
  requests: [request],
});
console.log(
  JSON.stringify({
    requests: result.requests.total,
    seconds: result.duration,
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    failed,
    used,
    exhausted,
  }),
);

/**
 * One autocannon measurement, in a process of its own so that the load generator does
 * not share an event loop with anything measured. Prints one JSON line.
 *
 *   node --import tsx bench/http/load.ts '{"url":...,"scenario":"run","seconds":5,"connections":50,"idsFile":...}'
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { body, type Ids, type Scenario } from './operations.js';

const args = JSON.parse(process.argv[2]!) as {
  url: string;
  key?: string;
  scenario: Scenario;
  seconds: number;
  connections: number;
  idsFile: string;
};
const pairs = JSON.parse(readFileSync(args.idsFile, 'utf8')) as [string, string][];
const pick = (): Ids => {
  const [threadId, runId] = pairs[Math.floor(Math.random() * pairs.length)]!;
  return { threadId, runId };
};

const result = await autocannon({
  url: args.url,
  method: 'POST',
  connections: args.connections,
  duration: args.seconds,
  headers: {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json',
    ...(args.key ? { authorization: `Bearer ${args.key}` } : {}),
  },
  requests: [{ setupRequest: (req) => ({ ...req, body: body(args.scenario, pick()) }) }],
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
  }),
);

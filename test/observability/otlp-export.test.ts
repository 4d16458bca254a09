/**
 * `npm start` with OTEL_EXPORTER_OTLP_ENDPOINT sends its spans, OTLP over HTTP, to that
 * collector (here a stub that records what it receives, in OTLP's JSON encoding).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingPostgres } from '../support/database.js';
import { startRunwayProcess, type RunwayProcess } from '../support/processes.js';

interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: { key: string; value: { stringValue?: string } }[];
}

const received: { path: string; contentType: string; spans: OtlpSpan[]; service: string | undefined }[] = [];
let collector: Server;
let runway: RunwayProcess;

// The process has a database of its own (PGlite in memory): once is enough.
describe.skipIf(usingPostgres)('OTLP export from a Runway process', () => {
  beforeAll(async () => {
    collector = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const payload = JSON.parse(body) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: OtlpSpan[] }[];
          }[];
        };
        for (const rs of payload.resourceSpans) {
          received.push({
            path: req.url ?? '',
            contentType: req.headers['content-type'] ?? '',
            spans: rs.scopeSpans.flatMap((s) => s.spans),
            service: rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue,
          });
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    runway = await startRunwayProcess({
      PGLITE_DIR: 'memory://',
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'runway-otlp-spec',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    // A process started under tsx takes its time on a loaded machine.
  }, 180_000);
  afterAll(async () => {
    await runway?.kill('SIGTERM');
    await new Promise((r) => collector?.close(r));
  });

  it('exports the request, the operation and the run execution in one trace', async () => {
    const gql = async (query: string, variables: Record<string, unknown> = {}) => {
      const res = await fetch(runway.url!, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
      return ((await res.json()) as { data: Record<string, { id: string }> }).data;
    };
    const { createAssistant } = await gql('mutation { createAssistant(input: { model: "scripted" }) { id } }');
    const { createThread } = await gql('mutation { createThread(input: { messages: [{ role: USER, content: "hi" }] }) { id } }');
    const { createRun } = await gql('mutation Go($t: ID!, $a: ID!) { createRun(threadId: $t, input: { assistantId: $a }) { id } }', {
      t: createThread!.id,
      a: createAssistant!.id,
    });
    const all = () => received.flatMap((r) => r.spans);
    const deadline = Date.now() + 20_000;
    const isRun = (s: OtlpSpan) => s.name === 'run execute' && s.attributes.some((a) => a.value.stringValue === createRun!.id);
    while (!all().some(isRun) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));

    expect(received[0]!.path).toBe('/v1/traces');
    expect(received[0]!.service).toBe('runway-otlp-spec');
    const execution = all().find(isRun)!;
    expect(execution).toBeDefined();
    const operation = all().find((s) => s.name === 'graphql mutation Go')!;
    expect(execution.traceId).toBe(operation.traceId);
    expect(execution.parentSpanId).toBe(operation.spanId);
    expect(all().some((s) => s.name === 'model scripted' && s.parentSpanId === execution.spanId)).toBe(true);
  }, 60_000);
});

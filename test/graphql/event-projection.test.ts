/**
 * The websocket writes a subscription's events without executing GraphQL per event when
 * the operation only selects event fields. What it writes must be what GraphQL execution
 * yields for the same event, byte for byte; any other operation is left to execution.
 */
import { execute, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { RunStatusEvent } from '../../src/domain/run.js';
import { eventProjection } from '../../src/graphql/event-projection.js';
import { schema } from '../../src/graphql/schema.js';

const events: RunStatusEvent[] = [
  { runId: 'run_01', threadId: 'thread_01', threadSeq: 3, version: 1, status: 'queued', previousStatus: null, at: 1_790_000_000 },
  {
    runId: 'run_02',
    threadId: 'thread_"x"',
    threadSeq: 12,
    version: 7,
    status: 'requires_action',
    previousStatus: 'in_progress',
    at: 1_790_000_123,
  },
];

const projected = [
  'subscription($r: ID!) { runStatusChanged(runId: $r) { runId version status } }',
  'subscription($t: ID!) { threadRunsChanged(threadId: $t) { runId threadId version cursor previousStatus status at __typename } }',
  'subscription S($r: ID!) { changed: runStatusChanged(runId: $r, afterVersion: 2) { v: version status s: status version } }',
  'subscription($t: ID!, $a: String) { threadRunsChanged(threadId: $t, after: $a) { at at cursor kind: __typename } }',
  // the run as the event left it, of the fields the event carries: what a client cache keys and updates
  'subscription($r: ID!) { runStatusChanged(runId: $r) { version run { __typename id status version threadId object } } }',
  'subscription($t: ID!) { threadRunsChanged(threadId: $t) { cursor r: run { id s: status } } }',
];

describe('an operation that selects only event fields', () => {
  it.each(projected)('is written as GraphQL execution would answer it: %s', async (query) => {
    const document = parse(query);
    const project = eventProjection(schema, document, undefined);
    expect(project).toBeDefined();
    for (const event of events) {
      const executed = await execute({
        schema,
        document,
        rootValue: { event },
        contextValue: {},
        variableValues: { r: event.runId, t: event.threadId },
      });
      expect(executed.errors).toBeUndefined();
      expect(project!(event)).toBe(JSON.stringify(executed));
    }
  });

  it('is compiled once per parsed document and operation', () => {
    const document = parse(projected[0]!);
    expect(eventProjection(schema, document, undefined)).toBe(eventProjection(schema, document, undefined));
  });
});

describe('any other operation is executed per event', () => {
  it.each([
    // a field of the run the event does not carry: read from the database per event
    'subscription($r: ID!) { runStatusChanged(runId: $r) { version run { id status startedAt } } }',
    'subscription($r: ID!) { runStatusChanged(runId: $r) { version run { id ... on Run { status } } } }',
    // fragments and directives: left to GraphQL's own field collection
    'subscription($r: ID!) { runStatusChanged(runId: $r) { ...F } } fragment F on RunStatusEvent { version }',
    'subscription($r: ID!) { runStatusChanged(runId: $r) { ... on RunStatusEvent { version } } }',
    'subscription($r: ID!, $b: Boolean!) { runStatusChanged(runId: $r) { version @include(if: $b) status } }',
    'subscription($r: ID!) @deprecated { runStatusChanged(runId: $r) { version } }',
    // not a subscription at all
    'query($r: ID!, $t: ID!) { run(threadId: $t, runId: $r) { id } }',
  ])('%s', (query) => {
    expect(eventProjection(schema, parse(query), undefined)).toBeUndefined();
  });

  it('picks the named operation of a document with several', () => {
    const document = parse(`
      query Q { __typename }
      subscription S($r: ID!) { runStatusChanged(runId: $r) { version } }`);
    expect(eventProjection(schema, document, 'Q')).toBeUndefined();
    expect(eventProjection(schema, document, 'S')!(events[1]!)).toBe('{"data":{"runStatusChanged":{"version":7}}}');
  });
});

/**
 * The websocket writes a subscription's events without executing GraphQL per event when
 * the operation only selects event fields. What it writes must be what GraphQL execution
 * yields for the same event, byte for byte; any other operation is left to execution.
 */
import { execute, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { RunRow } from '../../src/db/schema.js';
import type { RunStatusEvent } from '../../src/domain/run.js';
import type { MessageEvent, StepEvent } from '../../src/domain/run-events.js';
import { contentProjection, eventProjection } from '../../src/graphql/event-projection.js';
import { schema } from '../../src/graphql/schema.js';
import { encodeContentCursor, type ContentDelivery } from '../../src/realtime/content-streams.js';

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
  // the same field twice: its selections merge, as graphql-js merges them
  'subscription($r: ID!) { runStatusChanged(runId: $r) { version run { id } status run { status id threadId } } }',
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

const thread = { runId: 'run_01', threadId: 'thread_01', threadSeq: 4 };
const message = (change: MessageEvent['change'], sub: number): MessageEvent => ({
  ...thread,
  kind: 'message',
  messageId: 'msg_01',
  change,
  version: 2,
  sub,
  at: 1_790_000_200 + sub,
});
const step = (status: StepEvent['status'], sub: number): StepEvent => ({
  ...thread,
  kind: 'step',
  stepId: 'step_01',
  status,
  version: 2,
  sub,
  at: 1_790_000_300 + sub,
});
const delta = (index: number, text: string): ContentDelivery => ({
  delta: {
    ...thread,
    messageId: 'msg_01',
    index,
    text,
    cursor: encodeContentCursor({ threadSeq: 4, version: 2, sub: 2 }, index + text.length),
    at: 1_790_000_400,
  },
});

/** One delivery of each kind a content stream yields, texts of every sort. */
const deliveries: ContentDelivery[] = [
  { event: events[0]! },
  {
    event: { ...events[1]!, threadId: 'thread_01', runId: 'run_01' },
    run: { id: 'run_01', threadId: 'thread_01', status: 'requires_action', version: 7 } as RunRow,
  },
  { event: step('in_progress', 1) },
  { event: message('created', 2) },
  delta(0, 'Hello, "world" \\ \n\t'),
  delta(19, '👩‍👩‍👧‍👦 🎉 日本語 𝒳 é'),
  delta(40, '\u2028\u2029\u0000\u001f\ud800 </script>'),
  { event: message('completed', 3) },
  { event: message('incomplete', 4) },
  { event: step('completed', 5) },
  { event: step('cancelled', 6) },
  { event: { ...events[0]!, version: 3, status: 'completed', previousStatus: 'in_progress', threadId: 'thread_01' } },
];

const typeOf = (d: ContentDelivery) =>
  'delta' in d
    ? 'MessageDeltaEvent'
    : !('kind' in d.event)
      ? 'RunStatusEvent'
      : d.event.kind === 'message'
        ? 'MessageEvent'
        : 'RunStepEvent';

const RUN = '$t: ID!, $r: ID!, $a: String';
const runEvents = (selection: string, rest = '') =>
  `subscription(${RUN}) { runEvents(threadId: $t, runId: $r, after: $a) { ${selection} } } ${rest}`;
const threadEvents = (selection: string, rest = '') => `subscription($t: ID!) { threadEvents(threadId: $t) { ${selection} } } ${rest}`;
const ALL = ['RunStatusEvent', 'MessageEvent', 'MessageDeltaEvent', 'RunStepEvent'];

/** Operations, and the RunEvent types each gets a projection for (the others are executed). */
const contentOperations: Array<[string, string[]]> = [
  [runEvents('cursor runId threadId at __typename'), ALL],
  [
    runEvents(`__typename cursor
      ... on RunStatusEvent { status version previousStatus run { id status version threadId object __typename } }
      ... on MessageEvent { kind }
      ... on MessageDeltaEvent { messageId index text }
      ... on RunStepEvent { runId at }`),
    ALL,
  ],
  // aliases, fragments on the interface, a field again inside a fragment (first place counts)
  [
    threadEvents(`t: __typename ... on MessageDeltaEvent { i: index } c: cursor
      ... on RunEvent { at r: runId c: cursor }
      ... on MessageDeltaEvent { s: text i: index m: messageId }
      ... on RunStatusEvent { st: status, again: status, run { v: version } run { s: status } }
      ... on MessageEvent { k: kind kind }`),
    ALL,
  ],
  // named fragments: nested, on the interface and on each type, one spread twice
  [
    runEvents(
      '...Common ...Delta ...Common ... on MessageEvent { ...Message } ...Step ...Status',
      `fragment Common on RunEvent { cursor at ... on RunEvent { threadId } }
       fragment Delta on MessageDeltaEvent { text ...Common index }
       fragment Message on MessageEvent { kind __typename }
       fragment Step on RunStepEvent { __typename runId }
       fragment Status on RunStatusEvent { status run { id } }`,
    ),
    ALL,
  ],
  // a type with nothing selected for it completes as {}
  [runEvents('... on MessageDeltaEvent { text }'), ALL],
  [threadEvents('... on RunStatusEvent { status } ... on MessageEvent { kind }'), ALL],
  // what a delivery does not carry: executed for that type, projected for the others
  [
    runEvents('cursor ... on MessageEvent { kind message { id text status } } ... on MessageDeltaEvent { index text }'),
    ['RunStatusEvent', 'MessageDeltaEvent', 'RunStepEvent'],
  ],
  [
    runEvents('__typename ... on RunStepEvent { step { id status } } ... on RunStatusEvent { run { id startedAt } }'),
    ['MessageEvent', 'MessageDeltaEvent'],
  ],
  [runEvents('at ... on RunStatusEvent { status run { ... on Run { id } } }'), ['MessageEvent', 'MessageDeltaEvent', 'RunStepEvent']],
];

describe('a runEvents or threadEvents operation', () => {
  it.each(contentOperations)('is written per type as GraphQL execution would answer it: %s', async (query, projectedTypes) => {
    const document = parse(query);
    const project = contentProjection(schema, document, undefined);
    expect(project).toBeDefined();
    expect(eventProjection(schema, document, undefined)).toBeUndefined();
    const written = new Set<string>();
    for (const delivery of deliveries) {
      if (!project!.writes(delivery)) continue;
      written.add(typeOf(delivery));
      const executed = await execute({
        schema,
        document,
        rootValue: delivery,
        contextValue: {},
        variableValues: { t: 'thread_01', r: 'run_01' },
      });
      expect(executed.errors).toBeUndefined();
      expect(project!(delivery)).toBe(JSON.stringify(executed));
    }
    expect([...written].sort()).toEqual([...projectedTypes].sort());
  });

  it.each(contentOperations)(
    'writes each subscriber of a delivery the same JSON, and the next delivery its own (one value changed, or none): %s',
    async (query) => {
      const document = parse(query);
      const project = contentProjection(schema, document, undefined)!;
      const executedJson = async (delivery: ContentDelivery) =>
        JSON.stringify(
          await execute({ schema, document, rootValue: delivery, contextValue: {}, variableValues: { t: 'thread_01', r: 'run_01' } }),
        );
      // Five subscribers each, then deltas that differ by their index alone, their text alone, neither.
      const sequence = [
        ...deliveries.flatMap((d) => [d, d, d, d, d]),
        delta(3, 'same'),
        delta(4, 'same'),
        delta(4, 'other'),
        delta(4, 'other'),
        ...[...deliveries].reverse(),
      ];
      for (const delivery of sequence) {
        if (project.writes(delivery)) expect(project(delivery)).toBe(await executedJson(delivery));
      }
    },
  );

  it("reads a delta's time from the delivery, as its resolver does (not from the clock at writing)", async () => {
    const document = parse(runEvents('at'));
    const late = delta(0, 'x');
    const executed = await execute({
      schema,
      document,
      rootValue: late,
      contextValue: {},
      variableValues: { t: 'thread_01', r: 'run_01' },
    });
    expect(JSON.stringify(executed)).toBe('{"data":{"runEvents":{"at":1790000400}}}');
    expect(contentProjection(schema, document, undefined)!(late)).toBe('{"data":{"runEvents":{"at":1790000400}}}');
  });

  it.each([
    // directives anywhere, even constant ones: left to GraphQL's own collection
    runEvents('cursor ... on MessageDeltaEvent @include(if: true) { text }'),
    runEvents('cursor text: cursor @skip(if: false)'),
    runEvents('...F', 'fragment F on RunEvent @include(if: true) { cursor }'),
    'subscription($t: ID!, $r: ID!) { runEvents(threadId: $t, runId: $r) @include(if: true) { cursor } }',
    // nothing any delivery carries
    runEvents(
      '... on MessageEvent { message { id } } ... on RunStepEvent { step { id } } ... on RunStatusEvent { run { createdAt } } ... on MessageDeltaEvent { m: __typename } __typename @skip(if: false)',
    ),
  ])('is executed per delivery when no type can be written: %s', (query) => {
    expect(contentProjection(schema, parse(query), undefined)).toBeUndefined();
  });
});

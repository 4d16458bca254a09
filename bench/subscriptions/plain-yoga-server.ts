/**
 * The subscriber bench's baseline: runStatusChanged as a user of graphql-yoga would write
 * it from yoga's own documentation, no Runway code on the subscription path. createSchema
 * (SDL + resolvers), createYoga, and graphql-ws's `useServer` wired to yoga's envelop as
 * yoga's "GraphQL over WebSocket via graphql-ws" docs show it; events through yoga's
 * createPubSub, a topic per run, fed by a postgres.js LISTEN on the channel Runway
 * announces its commits on (one NOTIFY per commit, lines as `encodeEvents` writes them).
 * The subscribe resolver reads the run's current state with one query, yields it first,
 * then forwards that run's topic.
 *
 * What it leaves out, as a plain server would: authentication, per-socket limits, a
 * buffer bound, filling gaps from run_events (an event committed between the read and
 * the topic subscription is missed), completing after a terminal status.
 *
 *   DATABASE_URL=... PORT=0 node --import tsx bench/subscriptions/plain-yoga-server.ts
 *
 * Prints `plain-yoga on http://127.0.0.1:<port>/graphql` once it listens (what
 * test/support/processes.ts waits for); the websocket is on the same path.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createPubSub, createSchema, createYoga } from 'graphql-yoga';
import postgres from 'postgres';
import { WebSocketServer } from 'ws';
import { isStatusEvent } from '../../src/domain/run-events.js';
import { decodeEvents } from '../../src/realtime/event-codec.js';
import { EVENTS_CHANNEL } from '../../src/realtime/transport.js';

interface RunStatusEvent {
  runId: string;
  threadId: string;
  version: number;
  status: string;
  previousStatus: string | null;
}

const sql = postgres(process.env.DATABASE_URL!, { onnotice: () => {} });
const pubsub = createPubSub<{ runStatusChanged: [runId: string, event: RunStatusEvent] }>();

const upper = (status: string | null) => (status === null ? null : status.toUpperCase());

// Every process listening hears every commit's events; each goes to its run's topic.
await sql.listen(EVENTS_CHANNEL, (payload) =>
  decodeEvents(payload)
    .filter(isStatusEvent)
    .forEach((e) =>
      pubsub.publish('runStatusChanged', e.runId, {
        runId: e.runId,
        threadId: e.threadId,
        version: e.version,
        status: upper(e.status)!,
        previousStatus: upper(e.previousStatus),
      }),
    ),
);

const schema = createSchema({
  typeDefs: /* GraphQL */ `
    type RunStatusEvent {
      runId: ID!
      threadId: ID!
      version: Int!
      status: String!
      previousStatus: String
    }
    type Query {
      ok: Boolean!
    }
    type Subscription {
      runStatusChanged(runId: ID!): RunStatusEvent!
    }
  `,
  resolvers: {
    Query: { ok: () => true },
    Subscription: {
      runStatusChanged: {
        subscribe: async function* (_: unknown, { runId }: { runId: string }) {
          const [run] = await sql`select id, thread_id, version, status, previous_status from runs where id = ${runId}`;
          if (!run) throw new GraphQLError(`No run found with id '${runId}'.`);
          yield {
            runId: run.id,
            threadId: run.thread_id,
            version: run.version,
            status: upper(run.status)!,
            previousStatus: upper(run.previous_status),
          } satisfies RunStatusEvent;
          yield* pubsub.subscribe('runStatusChanged', runId);
        },
        resolve: (event: RunStatusEvent) => event,
      },
    },
  },
});

const yoga = createYoga({ schema, graphiql: { subscriptionsProtocol: 'WS' } });
const httpServer = createServer(yoga);
const wsServer = new WebSocketServer({ server: httpServer, path: yoga.graphqlEndpoint });

useServer(
  {
    execute: (args: any) => args.rootValue.execute(args),
    subscribe: (args: any) => args.rootValue.subscribe(args),
    onSubscribe: async (ctx, _id, params) => {
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        ...ctx,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params,
      });
      const args = {
        schema,
        operationName: params.operationName,
        document: parse(params.query),
        variableValues: params.variables,
        contextValue: await contextFactory(),
        rootValue: { execute, subscribe },
      };
      const errors = validate(args.schema, args.document);
      if (errors.length) return errors;
      return args;
    },
  },
  wsServer,
);

httpServer.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = httpServer.address() as AddressInfo;
  console.log(`plain-yoga on http://${address}:${port}${yoga.graphqlEndpoint}`);
});
process.on('SIGTERM', () => {
  wsServer.close();
  httpServer.close();
  void sql.end({ timeout: 1 }).then(() => process.exit(0));
});

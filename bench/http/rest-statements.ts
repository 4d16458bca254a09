/**
 * The statements Runway sends for a REST read must be the baseline's, text for text
 * (bench/http/baseline-sql.ts): the endpoint's own handler (src/rest/routes.ts) is run on
 * a database that logs what it is sent, with the run use cases Runway gives it, so a
 * change to the route, the use case or the statement shows up here instead of quietly
 * comparing two different queries.
 */
import { isDeepStrictEqual } from 'node:util';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../../src/db/client.js';
import { Router } from '../../src/rest/router.js';
import { routes, type RestServices } from '../../src/rest/routes.js';
import type { Announcer } from '../../src/runs/announcer.js';
import { runFaces } from '../../src/runs/index.js';
import { REST_STATEMENTS } from './baseline-sql.js';
import { REST_READS, type Ids, type RestRead } from './operations.js';
import { BENCH_PROJECT } from './seed.js';

/** Reads announce nothing. */
const silent: Announcer = {
  statusLine: () => sql`null`,
  itemLine: () => sql`null`,
  deltaLine: () => '',
  inStatement: () => sql`null`,
  inTransaction: async () => {},
  committed: () => {},
  relayed: () => Promise.resolve(),
  text: { publish: async () => {} },
};

/** Throws unless Runway's handler for each read sends the baseline's statements for `ids` (a run that exists). */
export async function checkRestStatements(url: string, reads: readonly RestRead[], ids: Ids): Promise<void> {
  const sent: string[] = [];
  const database = await openDatabase({ url, poolSize: 1, onQuery: (text) => sent.push(text) });
  const runs = runFaces({ db: database.db, announcer: silent, clock: () => 0, runExpiresAfterSeconds: 600 }).commands;
  // The reads measured need only the run use cases: any other call is a statement the baseline lacks.
  const unused = new Proxy({}, { get: (_, name) => () => Promise.reject(new Error(`unexpected call: ${String(name)}`)) });
  const services = { runs, threads: unused, assistants: unused } as unknown as RestServices;
  const router = new Router(routes);
  try {
    for (const read of reads) {
      const [path, search = ''] = REST_READS[read](ids).split('?');
      const match = router.match('GET', path!);
      if (!match) throw new Error(`${read}: no route for GET ${path}`);
      sent.length = 0;
      const caller = { projectId: BENCH_PROJECT, keyId: 'bench' };
      await match.route.handler({
        caller,
        params: match.params,
        query: new URLSearchParams(search),
        body: {},
        idempotencyKey: undefined,
        services,
      });
      const expected = REST_STATEMENTS[read];
      if (!isDeepStrictEqual(sent, [...expected])) {
        throw new Error(
          `${read}: Runway's statements are not the baseline's (bench/http/baseline-sql.ts)\n` +
            `runway:   ${JSON.stringify(sent)}\nbaseline: ${JSON.stringify(expected)}`,
        );
      }
    }
  } finally {
    await database.close();
  }
}

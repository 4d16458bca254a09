/**
 * What an idle subscriber costs in JS heap, and what it is made of: one gateway (compiled,
 * as production runs it), a heap snapshot through its inspector before and after N
 * graphql-ws subscribers (one socket each, each on its own run), and the difference per
 * subscriber by V8 node type and name, with the source locations of the closures.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:heap
 *   BENCH_SUBSCRIBERS=2000   BENCH_TOP=40   BENCH_TSX=1 (the gateway under tsx instead)
 *
 * Bounded: it stops by itself and drops its database.
 */
import { createClient, type Client } from 'graphql-ws';
import postgres from 'postgres';
import WebSocket from 'ws';
import { buildApp } from '../src/app.js';
import { buildRunway, startRunwayProcess, type RunwayProcess } from '../test/support/processes.js';

const N = Number(process.env.BENCH_SUBSCRIBERS ?? 2000);
const TOP = Number(process.env.BENCH_TOP ?? 40);
const compiled = process.env.BENCH_TSX !== '1';
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface Snapshot {
  meta: { node_fields: string[]; node_types: [string[]] };
  nodes: number[];
  strings: string[];
  locations: number[];
  /** script id -> url, from the debugger. */
  scripts: Map<number, string>;
}

async function snapshot(gateway: RunwayProcess): Promise<Snapshot> {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(gateway.stderr())![1]!;
  const socket = new WebSocket(url);
  await new Promise((resolve) => socket.once('open', resolve));
  const chunks: string[] = [];
  const scripts = new Map<number, string>();
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    if (message.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(message.params.chunk);
    if (message.method === 'Debugger.scriptParsed') scripts.set(Number(message.params.scriptId), String(message.params.url));
  });
  let id = 0;
  const call = (method: string, params?: unknown) =>
    new Promise<void>((resolve) => {
      const mine = ++id;
      const onReply = (data: WebSocket.RawData) => {
        if (JSON.parse(String(data)).id !== mine) return;
        socket.off('message', onReply);
        resolve();
      };
      socket.on('message', onReply);
      socket.send(JSON.stringify({ id: mine, method, params }));
    });
  await call('Debugger.enable');
  await call('HeapProfiler.enable');
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  socket.close();
  const raw = JSON.parse(chunks.join(''));
  return { meta: raw.snapshot.meta, nodes: raw.nodes, strings: raw.strings, locations: raw.locations, scripts };
}

/** Per node type:name, count and bytes; and the ids present. */
function tally(s: Snapshot) {
  const width = s.meta.node_fields.length;
  const types = s.meta.node_types[0];
  const byKey = new Map<string, { count: number; bytes: number }>();
  const ids = new Set<number>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i]!]!;
    ids.add(s.nodes[i + 2]!);
    const name = type.includes('string') ? '(string)' : String(s.strings[s.nodes[i + 1]!]).slice(0, 60);
    const key = `${type}:${name}`;
    const entry = byKey.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += s.nodes[i + 3]!;
    byKey.set(key, entry);
  }
  return { byKey, ids };
}

async function main() {
  const dbName = `runway_bench_heap_${process.pid}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const app = await buildApp(
    { databaseUrl: url.toString(), pgliteDir: 'memory://', databasePoolSize: 8, runExpiresAfterSeconds: 86_400, production: false },
    { worker: false },
  );
  const gateway = await startRunwayProcess(
    { DATABASE_URL: url.toString(), ROLE: 'gateway', WS_MAX_SUBSCRIPTIONS: '10', RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0' },
    ['--inspect=127.0.0.1:0'],
    compiled,
  );
  const clients: Client[] = [];
  try {
    const before = await snapshot(gateway);
    const { assistants, threads, runs } = app.services;
    const assistant = await assistants.create('default', { model: 'scripted' });
    const runIds: string[] = [];
    for (let i = 0; i < N; i++) {
      const thread = await threads.create('default', {});
      runIds.push((await runs.create('default', thread.id, { assistantId: assistant.id })).id);
    }
    for (let i = 0; i < N; i += 250) {
      await Promise.all(
        runIds.slice(i, i + 250).map(
          (runId) =>
            new Promise<void>((resolve, reject) => {
              const client = createClient({
                url: gateway.url!.replace('http', 'ws'),
                webSocketImpl: WebSocket,
                retryAttempts: 0,
                lazy: true,
              });
              clients.push(client);
              client.subscribe(
                { query: 'subscription($r: ID!) { runStatusChanged(runId: $r) { runId version status } }', variables: { r: runId } },
                { next: () => resolve(), error: reject, complete: () => {} },
              );
            }),
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 2000));
    const after = await snapshot(gateway);

    const was = tally(before);
    const now = tally(after);
    const rows = [...now.byKey]
      .map(([key, e]) => {
        const old = was.byKey.get(key) ?? { count: 0, bytes: 0 };
        return { key, count: (e.count - old.count) / N, bytes: (e.bytes - old.bytes) / N };
      })
      .filter((r) => Math.abs(r.bytes) >= 8)
      .sort((a, b) => b.bytes - a.bytes);
    console.log(
      `${N} idle subscribers on one gateway (${compiled ? 'compiled' : 'tsx'}): ${rows.reduce((s, r) => s + r.bytes, 0).toFixed(0)} bytes each`,
    );
    for (const r of rows.slice(0, TOP)) console.log(`${r.bytes.toFixed(0).padStart(6)} B  ${r.count.toFixed(2).padStart(6)} x  ${r.key}`);

    // The closures each subscriber added, by where their code is.
    const byPlace = new Map<string, number>();
    for (let k = 0; k < after.locations.length; k += 4) {
      const node = after.locations[k]!;
      if (was.ids.has(after.nodes[node + 2]!) || after.meta.node_types[0][after.nodes[node]!] !== 'closure') continue;
      const script = (after.scripts.get(after.locations[k + 1]!) ?? '?')
        .replace(/.*node_modules\//, '')
        .replace(/^file:\/\/.*?\/(dist\/)?(src|bench)\//, '$2/');
      const place = `${script}:${after.locations[k + 2]! + 1}`;
      byPlace.set(place, (byPlace.get(place) ?? 0) + 1);
    }
    console.log('\nclosures per subscriber, by source location:');
    for (const [place, count] of [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
      console.log(`${(count / N).toFixed(2).padStart(6)}  ${place}`);
    }
  } finally {
    await Promise.all(clients.map((c) => c.dispose()));
    await gateway.kill('SIGTERM');
    await app.stop();
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

if (compiled) buildRunway();
await main();

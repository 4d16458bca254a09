// Scratch: heap snapshot of a gateway holding N idle subscribers; aggregate by constructor.
import { writeFileSync, readFileSync } from 'node:fs';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import postgres from 'postgres';
import { buildApp } from '../src/app.js';
import { startRunwayProcess } from '../test/support/processes.js';
const N = Number(process.env.N ?? 2000);
const serverUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `runway_heap_${process.pid}`;
const admin = postgres(serverUrl, { max: 1 });
await admin.unsafe(`create database ${dbName}`);
const url = `postgres://postgres@127.0.0.1:5432/${dbName}`;
const driver = await buildApp({ databaseUrl: url, pgliteDir: 'memory://', databasePoolSize: 8, runExpiresAfterSeconds: 86400, production: false }, { worker: false });
const a = await driver.services.assistants.create('default', { model: 'scripted' });
const ids: string[] = [];
for (let i = 0; i < N; i++) { const t = await driver.services.threads.create('default', {}); ids.push((await driver.services.runs.create('default', t.id, { assistantId: a.id })).id); }
const gw = await startRunwayProcess({ DATABASE_URL: url, ROLE: 'gateway', WS_MAX_SUBSCRIPTIONS: '10', RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '0' }, ['--inspect=127.0.0.1:0']);
const insp = /Debugger listening on (ws:\/\/\S+)/.exec(gw.stderr())![1]!;
async function snapshot(file: string) {
  const s = new WebSocket(insp); await new Promise((r) => s.once('open', r));
  const chunks: string[] = []; let id = 0;
  const call = (method: string, params = {}) => new Promise<any>((resolve) => { const mine = ++id; const on = (d: any) => { const m = JSON.parse(String(d)); if (m.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(m.params.chunk); if (m.id === mine) { s.off('message', on); resolve(m.result); } }; s.on('message', on); s.send(JSON.stringify({ id: mine, method, params })); });
  await call('HeapProfiler.collectGarbage'); await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  s.close(); writeFileSync(file, chunks.join(''));
}
function aggregate(file: string) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const f = snap.snapshot.meta.node_fields; const types = snap.snapshot.meta.node_types[0]; const nf = f.length;
  const ti = f.indexOf('type'), ni = f.indexOf('name'), si = f.indexOf('self_size');
  const agg = new Map<string, [number, number]>();
  for (let i = 0; i < snap.nodes.length; i += nf) { const k = `${types[snap.nodes[i + ti]]}:${snap.strings[snap.nodes[i + ni]].slice(0, 60)}`; const v = agg.get(k) ?? [0, 0]; v[0]++; v[1] += snap.nodes[i + si]; agg.set(k, v); }
  return agg;
}
await snapshot('/tmp/heap-before.json');
const clients = ids.map(() => createClient({ url: gw.url!.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: true }));
for (let i = 0; i < ids.length; i += 250) await Promise.all(ids.slice(i, i + 250).map((r, j) => new Promise<void>((res) => clients[i + j]!.subscribe({ query: 'subscription($r: ID!) { runStatusChanged(runId: $r) { runId version status } }', variables: { r } }, { next: () => res(), error: (e) => { console.error(e); res(); }, complete: () => {} }))));
await new Promise((r) => setTimeout(r, 2000));
await snapshot('/tmp/heap-after.json');
const before = aggregate('/tmp/heap-before.json'), after = aggregate('/tmp/heap-after.json');
const diff = [...after].map(([k, [c, s]]) => [k, c - (before.get(k)?.[0] ?? 0), s - (before.get(k)?.[1] ?? 0)] as const).sort((x, y) => y[2] - x[2]);
let total = 0; for (const d of diff) total += d[2];
console.log(`total ${(total / N).toFixed(0)} bytes per subscriber`);
for (const [k, c, s] of diff.slice(0, 45)) console.log(`${(s / N).toFixed(0).padStart(6)} B/sub ${(c / N).toFixed(2).padStart(6)} obj/sub  ${k}`);
await Promise.all(clients.map((c) => c.dispose()));
await gw.kill('SIGTERM'); await driver.stop();
await admin.unsafe(`drop database if exists ${dbName} with (force)`); await admin.end();

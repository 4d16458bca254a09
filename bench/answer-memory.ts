/**
 * What big reads cost the gateway in memory: one thread of 100 messages of 400 KB (40 MB,
 * written with SQL, as rows stored before any size limit), and each scenario below sent
 * BENCH_CONCURRENT times at once (default 4) to a fresh gateway (compiled, as production
 * runs it). Reported per scenario: the answers (status, code or size, time), the gateway's
 * peak RSS (VmHWM) and peak JS heap (sampled through its inspector every 25 ms), and the
 * slowest of the small reads another tenant sends meanwhile (one every 100 ms).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:answers
 *   BENCH_RUNWAY_DIR=/path/to/other/checkout   (measure that code instead: built there first)
 *   BENCH_CONCURRENT=4
 *
 * Bounded: every request has a deadline, each gateway is stopped after its scenario, and
 * the scratch database is dropped, also when the bench fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import postgres from 'postgres';
import WebSocket from 'ws';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dir = resolve(process.env.BENCH_RUNWAY_DIR ?? '.');
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 4);
const KEY = 'answers-bench-key-0123456789';
const MESSAGE_BYTES = 400_000;
const log = (line: string) => console.error(`[answers] ${line}`);

const pages = (aliases: number, page: string) =>
  `query($t: ID!) { ${Array.from({ length: aliases }, (_, i) => `a${i}: thread(id: $t) { messages${page} { nodes { text } } }`).join(' ')} }`;

const SCENARIOS = [
  {
    name: '15 aliases x first: $n (100): 600 MB',
    query: pages(15, '(first: $n)').replace('query($t: ID!)', 'query($t: ID!, $n: Int)'),
    variables: { n: 100 },
  },
  { name: '4 aliases x first: 100: 160 MB', query: pages(4, '(first: 100)'), variables: {} },
  { name: '15 aliases x the default page (20): 120 MB', query: pages(15, ''), variables: {} },
] as const;

function vmHwmMiB(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

/** Peak JS heap, sampled through the inspector (Runtime.getHeapUsage costs next to nothing). */
async function heapSampler(inspectorUrl: string) {
  const socket = new WebSocket(inspectorUrl);
  await new Promise((resolve, reject) => (socket.once('open', resolve), socket.once('error', reject)));
  let peak = 0;
  let id = 0;
  socket.on('message', (data) => {
    const used = JSON.parse(String(data))?.result?.usedSize;
    if (typeof used === 'number') peak = Math.max(peak, used);
  });
  const timer = setInterval(() => socket.send(JSON.stringify({ id: ++id, method: 'Runtime.getHeapUsage' })), 25);
  return {
    peakMiB: () => peak / 1024 / 1024,
    stop: () => (clearInterval(timer), socket.close()),
  };
}

async function startGateway(databaseUrl: string): Promise<{ child: ChildProcess; url: string; inspector: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--inspect=127.0.0.1:0', 'dist/src/main.js'], {
    cwd: dir,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      ROLE: 'gateway',
      NODE_ENV: 'production',
      API_KEYS: `${KEY}:bench`,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Only the first lines are kept (where it says where it listens); the access lines are not.
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => void (out.length < 10_000 && (out += d)));
  child.stderr!.on('data', (d) => void (err.length < 10_000 && (err += d)));
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  const deadline = Date.now() + 60_000;
  while (!/on (http:\/\/\S+\/graphql)/.test(out) || !/Debugger listening on (ws:\/\/\S+)/.test(err)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await kill();
      throw new Error(`gateway did not start: ${out} ${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /on (http:\/\/\S+\/graphql)/.exec(out)![1]!.replace('localhost', '127.0.0.1');
  const inspector = /Debugger listening on (ws:\/\/\S+)/.exec(err)![1]!;
  return {
    child,
    url,
    inspector,
    stop: kill,
  };
}

async function post(url: string, query: string, variables: Record<string, unknown>, timeoutMs = 120_000) {
  const started = performance.now();
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let code = '';
    try {
      code = (JSON.parse(text) as { errors?: { extensions?: { code?: string } }[] }).errors?.[0]?.extensions?.code ?? 'data';
    } catch {
      code = 'not JSON';
    }
    return { status: res.status, code, bytes: Buffer.byteLength(text), ms: performance.now() - started };
  } catch (error) {
    return { status: 0, code: String((error as Error).message).slice(0, 60), bytes: 0, ms: performance.now() - started };
  }
}

async function main() {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  log(`building ${dir}`);
  execFileSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.build.json')], { stdio: 'inherit' });
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  const name = `runway_answers_${process.pid}`;
  await admin.unsafe(`create database ${name}`);
  const databaseUrl = Object.assign(new URL(serverUrl), { pathname: `/${name}` }).toString();
  const results: string[] = [];
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  try {
    // The first gateway migrates the database; the thread is made through the API.
    gateway = await startGateway(databaseUrl);
    const created = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ query: 'mutation { createThread { id } }' }),
    }).then((r) => r.json() as Promise<{ data: { createThread: { id: string } } }>);
    const threadId = created.data.createThread.id;
    const db = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    await db`insert into messages (id, thread_id, created_at, role, content)
      select 'msg_' || lpad(i::text, 26, '0'), ${threadId}, 1, 'user', repeat(chr(97 + i % 26), ${MESSAGE_BYTES})
      from generate_series(1, 100) as i`;
    await db.end();
    log(`thread ${threadId}: 100 messages of ${MESSAGE_BYTES} bytes`);

    for (const scenario of SCENARIOS) {
      gateway ??= await startGateway(databaseUrl);
      const { url, child } = gateway;
      await post(url, '{ __typename }', {});
      const rssBefore = vmHwmMiB(child.pid!);
      const heap = await heapSampler(gateway.inspector);
      let slowestSmall = 0;
      let running = true;
      const small = (async () => {
        while (running) {
          const r = await post(url, 'query($t: ID!) { thread(id: $t) { id } }', { t: threadId }, 120_000);
          slowestSmall = Math.max(slowestSmall, r.ms);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const answers = await Promise.all(
        Array.from({ length: CONCURRENT }, () => post(url, scenario.query, { t: threadId, ...scenario.variables })),
      );
      running = false;
      await small;
      await new Promise((r) => setTimeout(r, 100));
      heap.stop();
      const alive = child.exitCode === null && child.signalCode === null;
      const rssPeak = alive ? vmHwmMiB(child.pid!) : NaN;
      const line =
        `${scenario.name}, ${CONCURRENT} at once: ` +
        answers.map((a) => `${a.status} ${a.code} ${(a.bytes / 1e6).toFixed(1)} MB in ${(a.ms / 1000).toFixed(2)} s`).join('; ') +
        ` | RSS ${rssBefore.toFixed(0)} -> peak ${rssPeak.toFixed(0)} MiB, heap peak ${heap.peakMiB().toFixed(0)} MiB, slowest small read ${slowestSmall.toFixed(0)} ms` +
        (alive ? '' : ' | the gateway died');
      log(line);
      results.push(line);
      await gateway.stop();
      gateway = undefined;
    }
  } finally {
    await gateway?.stop();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
  console.log(`code: ${dir}\n${results.join('\n')}`);
}

await main();

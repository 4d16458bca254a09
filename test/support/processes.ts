/**
 * Runway processes (`src/main.ts`, as `npm start` runs it) started by tests, and other
 * servers of this repository started the same way (the benches' baselines).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/**
 * The node flags of production's command (`npm run start:prod`, package.json), read from
 * there: compiled processes run as production runs, the benches' baselines included, so
 * that both sides of a comparison run on the same runtime.
 */
export const PRODUCTION_NODE_FLAGS: readonly string[] = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }
).scripts['start:prod']!.split(/\s+/).filter((word) => word.startsWith('--'));

/**
 * How node runs one of this repository's scripts: the TypeScript through tsx, or with
 * `compiled` its JavaScript in dist/ (what `npm run build` writes, and how production
 * runs Runway, with its flags: tsx names every function it creates, which costs a
 * property store per closure, per request and per subscription).
 */
export function nodeCommand(script: string, compiled = false): string[] {
  return compiled ? [...PRODUCTION_NODE_FLAGS, join('dist', script.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', script];
}

/** `npm run build`, for the benches: they measure Runway as production runs it. */
export function buildRunway(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}

export interface RunwayProcess {
  child: ChildProcess;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** What it wrote to stdout so far (its log lines). */
  stdout(): string;
  /** The GraphQL URL; undefined for ROLE=worker. */
  url: string | undefined;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startRunwayProcess(env: Record<string, string>, nodeArgs: string[] = [], compiled = false): Promise<RunwayProcess> {
  return startServerProcess('src/main.ts', env, nodeArgs, { label: `runway ${env.ROLE ?? 'all'}`, name: 'Runway', compiled });
}

/**
 * Any server script of this repository, started as Runway is (`node --import tsx
 * <script>`, or its compiled JavaScript; PORT=0 and HOST=127.0.0.1 unless `env` says otherwise): ready once it
 * prints `... on http://<host>:<port>/graphql` on stdout. Its stderr is echoed here,
 * each chunk prefixed with `[label]`.
 */
export async function startServerProcess(
  script: string,
  env: Record<string, string>,
  nodeArgs: string[] = [],
  { label = script, name = script, compiled = false }: { label?: string; name?: string; compiled?: boolean } = {},
): Promise<RunwayProcess> {
  const child = spawn(process.execPath, [...nodeArgs, ...nodeCommand(script, compiled)], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', SHUTDOWN_DRAIN_SECONDS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
    process.stderr.write(`[${label}] ${d}`);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let out = '';
  const url = await new Promise<string | undefined>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/on (http:\/\/\S+\/graphql)/);
      if (m) resolve(m[1]!.replace('localhost', '127.0.0.1'));
      else if (/Runway worker/.test(out)) resolve(undefined);
    });
    child.once('exit', () => reject(new Error(`${name} exited before it was ready: ${out}`)));
  });
  return {
    child,
    stderr: () => stderr,
    stdout: () => out,
    url,
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

export async function gqlAt<T = any>(url: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data as T;
}

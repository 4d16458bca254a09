/** Runway processes (`src/main.ts`, as `npm start` runs it) started by tests. */
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunwayProcess {
  child: ChildProcess;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** The GraphQL URL; undefined for ROLE=worker. */
  url: string | undefined;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function startRunwayProcess(env: Record<string, string>, nodeArgs: string[] = []): Promise<RunwayProcess> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
    process.stderr.write(`[runway ${env.ROLE ?? 'all'}] ${d}`);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = await new Promise<string | undefined>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/on (http:\/\/\S+\/graphql)/);
      if (m) resolve(m[1]!.replace('localhost', '127.0.0.1'));
      else if (/Runway worker/.test(out)) resolve(undefined);
    });
    child.once('exit', () => reject(new Error(`Runway exited before it was ready: ${out}`)));
  });
  return {
    child,
    stderr: () => stderr,
    url,
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

export async function gqlAt<T = any>(url: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: T; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data as T;
}

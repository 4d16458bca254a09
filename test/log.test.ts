/**
 * How log lines look: readable for a person at a terminal, JSON for everything else; and
 * the address a person needs, on a line of its own, when `npm start` is read by a person.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { logFormat } from '../src/log.js';
import { usingPostgres } from './support/database.js';
import { startRunwayProcess } from './support/processes.js';

describe('logFormat', () => {
  it('is readable at a terminal in development, JSON anywhere else', () => {
    expect(logFormat({ isTTY: true, production: false })).toBe('pretty');
    expect(logFormat({ isTTY: false, production: false })).toBe('json');
    expect(logFormat({ isTTY: true, production: true })).toBe('json');
    expect(logFormat({ isTTY: false, production: true })).toBe('json');
    expect(logFormat({ isTTY: true, production: false, setting: 'auto' })).toBe('pretty');
  });

  it('is what LOG_FORMAT says when it says one', () => {
    expect(logFormat({ isTTY: false, production: true, setting: 'pretty' })).toBe('pretty');
    expect(logFormat({ isTTY: true, production: false, setting: 'json' })).toBe('json');
  });
});

// The process runs on a PGlite directory of its own: once is enough, in the pglite project.
// A cold start of PGlite with its migrations takes seconds, more on a busy machine.
describe.skipIf(usingPostgres)('npm start', { timeout: 120_000 }, () => {
  const leftovers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const dispose of leftovers.splice(0).reverse()) await dispose();
  });

  async function start(env: Record<string, string>) {
    const dir = await mkdtemp(join(tmpdir(), 'runway-log-'));
    leftovers.push(() => rm(dir, { recursive: true, force: true }));
    const runway = await startRunwayProcess({ PGLITE_DIR: dir, ...env });
    leftovers.push(() => runway.kill());
    return runway;
  }

  it('prints readable lines and the GraphQL address on a line of its own for a person', async () => {
    const runway = await start({ LOG_FORMAT: 'pretty' });
    const url = runway.url!;
    const out = await settled(runway.stdout, (text) => text.includes('Runway is ready'));
    expect(out).toMatch(new RegExp(`^Runway is ready: ${escape(url)} \\(GraphiQL in a browser\\)$`, 'm'));
    const lines = out.split('\n').filter(Boolean);
    expect(lines.some((line) => /INFO.*Runway all on http:/.test(line))).toBe(true);
    expect(lines.filter((line) => line.startsWith('{'))).toEqual([]);
  });

  it('writes JSON lines when its output is read by a program', async () => {
    // stdout is a pipe here: what a log collector or a container runtime reads.
    const runway = await start({});
    const out = await settled(runway.stdout, (text) => text.includes('"url"'));
    const lines = out
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.find((line) => line['url'])).toMatchObject({ level: 30, url: runway.url, role: 'all' });
    expect(out).not.toContain('Runway is ready');
  });
});

/** The text once `done` holds of it (the ready line comes after the line the process helper waits for). */
async function settled(read: () => string, done: (text: string) => boolean): Promise<string> {
  for (let i = 0; i < 100 && !done(read()); i++) await new Promise((r) => setTimeout(r, 50));
  return read();
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

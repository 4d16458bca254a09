/**
 * The documents written from the code: docs/errors.md from the error catalogue and the
 * configuration table of docs/operations.md from config.ts. Each says what the code says,
 * and `npm run docs:check` (CI) refuses a stale one.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { settingRows } from '../src/config.js';
import { ERROR_CODES } from '../src/domain/error-codes.js';
import { nodeCommand } from './support/processes.js';

const read = (path: string) => readFile(new URL(`../${path}`, import.meta.url), 'utf8');

/** The cells of each row of the markdown tables in `text`, by the first cell (backticks dropped). */
function rowsOf(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const cells = line.slice(2, -2).split(' | ');
    rows.set(cells[0]!.replaceAll('`', ''), cells.slice(1));
  }
  return rows;
}

describe('docs/errors.md', () => {
  it('lists every code of the catalogue with its HTTP status and whether to retry it', async () => {
    const rows = rowsOf(await read('docs/errors.md'));
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      expect(rows.get(code), code).toBeDefined();
      const [status, retry] = rows.get(code)!;
      expect(status, code).toBe(String(info.status));
      expect(retry, code).toBe(info.retryable ? 'yes' : 'no');
    }
    expect([...rows.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });
});

describe('the configuration table of docs/operations.md', () => {
  it('lists every variable config.ts reads, with its default', async () => {
    const rows = rowsOf(await read('docs/operations.md'));
    for (const setting of settingRows()) {
      expect(rows.get(setting.variable)?.[0], setting.variable).toBe(setting.shownDefault);
    }
    expect(rows.get('MAX_BODY_BYTES')).toEqual(['`1048576`', 'Largest HTTP body (413 beyond; a POST without Content-Length gets 411).']);
  });
});

describe('npm run docs:check', () => {
  const run = (script: string, ...args: string[]) =>
    promisify(execFile)(process.execPath, [...nodeCommand(script), ...args]).then(
      () => 0,
      (error: { code?: number }) => error.code ?? -1,
    );

  for (const [script, doc, stale] of [
    ['scripts/config-table.ts', 'docs/operations.md', ['| `PORT` | `4000` |', '| `PORT` | `4001` |']],
    ['scripts/error-table.ts', 'docs/errors.md', ['| `NOT_FOUND` | 404 |', '| `NOT_FOUND` | 410 |']],
  ] as const) {
    it(`fails on a stale ${doc}, passes once ${script} rewrote it`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'runway-docs-'));
      try {
        const committed = await read(doc);
        expect(await run(script, '--check', fileURLToPath(new URL(`../${doc}`, import.meta.url)))).toBe(0);
        const copy = join(dir, 'doc.md');
        expect(committed).toContain(stale[0]);
        await writeFile(copy, committed.replace(stale[0], stale[1]));
        expect(await run(script, '--check', copy)).toBe(1);
        expect(await run(script, copy)).toBe(0);
        expect(await readFile(copy, 'utf8')).toBe(committed);
        expect(await run(script, '--check', copy)).toBe(0);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, 60_000);
  }
});

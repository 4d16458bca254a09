/**
 * The error catalogue is the only source of `extensions.code`: no code is written
 * anywhere else in src/, and every code it lists is one that something really answers.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, isErrorCode } from '../../src/domain/error-codes.js';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
const CATALOGUE = 'domain/error-codes.ts';

function* sourceFiles(dir: string, names = /\.(ts|mts|mjs)$/): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path, names);
    else if (names.test(entry.name)) yield path;
  }
}

const sources = [...sourceFiles(SRC)].map((path) => ({ file: relative(SRC, path), text: readFileSync(path, 'utf8') }));

/**
 * Codes written as string literals: `code: 'X'`, `code = 'X'`, `['code'] = 'X'` (or `||=`,
 * `??=`). Everything else names its code through a typed parameter (`codedError`,
 * `sendError`, a DomainError's constructor), which only takes a catalogued one.
 */
const LITERAL_CODE = /(?:\bcode|\[\s*['"]code['"]\s*\])\s*(?::|=|\|\|=|\?\?=)\s*(['"`])([A-Z][A-Z0-9_]*)\1/g;

function literalCodes(text: string): string[] {
  return [...text.matchAll(LITERAL_CODE)].map((m) => m[2]!);
}

describe('the error catalogue', () => {
  it('is the only place in src/ that writes a code as a string literal', () => {
    const found = sources
      .filter(({ file }) => file !== CATALOGUE)
      .flatMap(({ file, text }) => literalCodes(text).map((code) => `${file}: ${code}`));
    expect(found).toEqual([]);
  });

  it('would catch a code written inline (the check above is not vacuous)', () => {
    expect(literalCodes(`new GraphQLError('no', { extensions: { code: 'MADE_UP' } })`)).toEqual(['MADE_UP']);
    expect(literalCodes(`error.extensions['code'] ||= "ALSO_MADE_UP"`)).toEqual(['ALSO_MADE_UP']);
    expect(literalCodes(`{ code: 'server_error' as const }`)).toEqual([]); // a run's lastError, not an error code
  });

  it("lists only codes something answers: Runway's are made in src/, the others by graphql-yoga", () => {
    const ours = sources
      .filter(({ file }) => file !== CATALOGUE)
      .map(({ text }) => text)
      .join('\n');
    const yoga = dirname(createRequire(import.meta.url).resolve('graphql-yoga'));
    const yogas = [...sourceFiles(yoga, /\.js$/)].map((path) => readFileSync(path, 'utf8')).join('\n');
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      const made = (info.from === 'runway' ? ours : yogas).includes(`'${code}'`);
      expect(made, `${code} (${info.from})`).toBe(true);
    }
  });

  it('gives every code an error status, a retry verdict and a one-line meaning', () => {
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(info.status, code).toBeGreaterThanOrEqual(400);
      expect(info.status, code).toBeLessThan(600);
      expect(typeof info.retryable, code).toBe('boolean');
      expect(info.meaning, code).toMatch(/^\S.*\.$/);
      expect(info.meaning, code).not.toContain('\n');
    }
    expect(isErrorCode('NOT_FOUND')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
  });
});

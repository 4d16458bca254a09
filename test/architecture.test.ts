/**
 * The import graph of src/: each folder imports only from folders below it, so that a rule
 * lives where it belongs and the run store knows nothing of how its events travel.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

/** The layers, lowest first; folders of one layer do not import each other. */
const LAYERS: string[][] = [
  ['domain'],
  // Metrics and traces: every layer above reports to them; they know none of it.
  ['observability'],
  ['db'],
  ['idempotency'],
  ['assistants', 'threads'],
  ['runs'],
  ['engine', 'realtime'],
  ['graphql', 'rest'],
  ['auth'],
  ['server'],
];
/** Files at the top of src/: leaves anyone may import (config, log), or the composition root. */
const LEAVES = new Set(['config', 'log']);

const layerOf = (folder: string) => LAYERS.findIndex((layer) => layer.includes(folder));

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|mts|mjs)$/.test(entry.name)) yield path;
  }
}

/** Where a file sits: its top folder under src/, or its own name for a file at the top. */
function placeOf(path: string): string {
  const [first, ...rest] = relative(SRC, path).split('/');
  return rest.length ? first! : first!.replace(/\.[a-z]+$/, '');
}

/** Every import of a src/ file by another, as [importer, imported] places. */
function edges(): { from: string; to: string; file: string; spec: string }[] {
  const found = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const [, spec] of text.matchAll(/(?:import|export)[^'";]*?from\s+'(\.[^']+)'/g)) {
      const target = resolve(dirname(file), spec!);
      if (!target.startsWith(SRC)) continue;
      found.push({ from: placeOf(file), to: placeOf(target), file: relative(SRC, file), spec: spec! });
    }
  }
  return found;
}

describe('the import graph of src/', () => {
  it('knows the layer of every folder', () => {
    const folders = readdirSync(SRC, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    expect(folders.filter((f) => layerOf(f) < 0)).toEqual([]);
  });

  it('has no import up the layers, nor across one layer', () => {
    const wrong = edges().filter(({ from, to }) => {
      if (from === to || LEAVES.has(to)) return false;
      const [a, b] = [layerOf(from), layerOf(to)];
      if (a < 0) return false; // the composition root (app, main) and the scripts may import anything
      return b < 0 || b >= a;
    });
    expect(wrong.map((e) => `${e.file} -> ${e.spec}`)).toEqual([]);
  });

  it('keeps the run store free of how events travel, and threads free of runs', () => {
    const imports = edges();
    expect(imports.filter((e) => e.from === 'runs' && e.to === 'realtime')).toEqual([]);
    expect(imports.filter((e) => e.from === 'threads' && e.to === 'runs')).toEqual([]);
  });
});

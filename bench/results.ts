/**
 * Where a bench's latest figures live: besides printing its result table, a bench writes
 * it into docs/performance.md, between `<!-- bench:<name>:start -->` and
 * `<!-- bench:<name>:end -->`, under a line that says when, on which commit and on what
 * machine it was taken. So the figures in the docs are a bench's own output, never copied
 * by hand, and never without the context that makes them comparable.
 *
 * BENCH_DOCS=0 leaves the file alone (a trial with short settings measures nothing worth
 * keeping).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const DOC = new URL('../docs/performance.md', import.meta.url);

/** The machine's load when the bench started: a busy machine shows in every figure. */
const loadAtStart = loadavg()[0]!;

/** Prints a bench's result lines as they come, and records them in the docs at the end. */
export function resultLines() {
  const lines: string[] = [];
  return {
    print(line: string): void {
      console.log(line);
      lines.push(line);
    },
    record(name: string): void {
      recordResults(name, lines.join('\n'));
    },
  };
}

/** Replaces the bench's block in docs/performance.md with `body`, under when/where it was taken. */
export function recordResults(name: string, body: string): void {
  if (process.env.BENCH_DOCS === '0') return;
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const doc = readFileSync(DOC, 'utf8');
  const from = doc.indexOf(start);
  const to = doc.indexOf(end, from);
  if (from < 0 || to < 0) {
    console.error(`[bench] docs/performance.md has no ${start} ... ${end}: results not recorded there`);
    return;
  }
  const block = `${start}\n${takenLine()}\n\n${body.trim()}\n${end}`;
  writeFileSync(DOC, doc.slice(0, from) + block + doc.slice(to + end.length));
  console.error(`[bench] results written to docs/performance.md (bench:${name})`);
}

/** When, on which code and on what machine. */
function takenLine(): string {
  const at = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const model = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  return `_Taken ${at} UTC, commit ${commit()}, ${availableParallelism()} cores (${model}), load ${loadAtStart.toFixed(1)} at start._`;
}

/** The commit measured, and whether the code differed from it (markdown aside). */
function commit(): string {
  const cwd = fileURLToPath(new URL('..', import.meta.url));
  const git = (...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const hash = git('rev-parse', '--short', 'HEAD');
    const changed = git('status', '--porcelain', '--untracked-files=no', '--', '.', ':(exclude)*.md');
    return changed ? `\`${hash}\` with uncommitted changes` : `\`${hash}\``;
  } catch {
    return 'unknown (no git)';
  }
}

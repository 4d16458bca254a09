/**
 * A section of a markdown file that a script writes from the code, between
 * `<!-- NAME:start -->` and `<!-- NAME:end -->`, so that the document and the code cannot
 * say different things. `--check` (what CI runs) fails when the file differs from what
 * would be written, instead of writing it.
 *
 * Usage of a script built on it: `tsx scripts/X.ts [--check] [file]` (the file defaults
 * to the document the script owns; specs point it at a copy).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** A markdown table; a `|` inside a cell is escaped. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** `text` with the section `name` holding `content`; throws if the markers are missing. */
export function withSection(text: string, name: string, content: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end, from);
  if (from < 0 || to < 0) throw new Error(`the markers ${start} and ${end} are missing`);
  return `${text.slice(0, from + start.length)}\n${content}\n${text.slice(to)}`;
}

/** Writes (or with `--check`, checks) the section `name` of the file the command line names, or of `file`. */
export async function writeSection(file: URL, name: string, content: string, command: string): Promise<void> {
  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const path = args.find((a) => !a.startsWith('--')) ?? fileURLToPath(file);
  const text = await readFile(path, 'utf8');
  const wanted = withSection(text, name, content);
  if (!check) {
    if (wanted !== text) await writeFile(path, wanted);
    console.log(`${path}: ${name} written`);
  } else if (wanted !== text) {
    console.error(`${path}: the ${name} section is stale: run \`${command}\` and commit it.`);
    process.exit(1);
  } else {
    console.log(`${path}: ${name} is up to date.`);
  }
}

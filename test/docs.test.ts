/**
 * The documentation's links: every relative link in README.md and docs/*.md leads to a
 * file of the repository, and every #anchor to a heading of the page it names, as GitHub
 * renders it (github-slugger makes GitHub's heading ids). Moving a section breaks a link
 * here before it breaks for a reader.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import GithubSlugger from 'github-slugger';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PAGES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** The page's prose: fenced code blocks and inline code hold no links. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Every link target of a page: `[text](target)`, the title left out. */
function linksOf(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

/** The ids GitHub gives a page's headings: their text as rendered, slugged, numbered when repeated. */
function anchorsOf(markdown: string): Set<string> {
  const slugger = new GithubSlugger();
  const headings = [...markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)];
  return new Set(
    headings.map(([, text]) =>
      slugger.slug(
        text!
          .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link shows its text
          .replace(/[`*]/g, ''), // code and emphasis marks are not text
      ),
    ),
  );
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target);

/** Each relative link of each page, resolved: the file it names and the anchor, if any. */
const links = PAGES.flatMap((page) =>
  linksOf(readFileSync(join(ROOT, page), 'utf8'))
    .filter((target) => !isExternal(target))
    .map((target) => {
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? join(ROOT, page) : resolve(ROOT, dirname(page), decodeURIComponent(path));
      return { page, target, file, anchor };
    }),
);

describe('links between the docs', () => {
  it('finds the pages and their links', () => {
    expect(PAGES).toEqual(expect.arrayContaining(['README.md', 'docs/architecture.md', 'docs/operations.md']));
    expect(links.length).toBeGreaterThan(20);
  });

  it('leads every relative link to a file of the repository', () => {
    const broken = links.filter(({ file }) => !file.startsWith(ROOT) || !existsSync(file));
    expect(broken.map(({ page, target }) => `${page}: ${target}`)).toEqual([]);
  });

  it('leads every #anchor to a heading of the page it names', () => {
    const anchors = new Map<string, Set<string>>();
    const broken = links.filter(({ file, anchor }) => {
      if (anchor === undefined || !file.endsWith('.md') || !existsSync(file)) return false;
      if (!anchors.has(file)) anchors.set(file, anchorsOf(readFileSync(file, 'utf8')));
      return !anchors.get(file)!.has(anchor);
    });
    expect(broken.map(({ page, target, file }) => `${page}: ${target} (${relative(ROOT, file)} has no such heading)`)).toEqual([]);
  });
});

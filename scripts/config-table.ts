/**
 * `npm run docs:config` writes the configuration table of docs/operations.md from
 * src/config.ts (every variable, its default and what it means); `--check` fails when the
 * committed table differs.
 */
import { settingRows } from '../src/config.js';
import { markdownTable, writeSection } from './generated-section.js';

const table = markdownTable(
  ['Variable', 'Default', 'Meaning'],
  settingRows().map((row) => [`\`${row.variable}\``, row.shownDefault, row.meaning]),
);
await writeSection(new URL('../docs/operations.md', import.meta.url), 'config-table', table, 'npm run docs:config');

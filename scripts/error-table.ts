/**
 * `npm run docs:errors` writes the table of docs/errors.md from the error catalogue
 * (src/domain/error-codes.ts); `--check` fails when the committed table differs.
 */
import { ERROR_CODES } from '../src/domain/error-codes.js';
import { markdownTable, writeSection } from './generated-section.js';

const table = markdownTable(
  ['Code', 'HTTP status', 'Retry', 'Meaning'],
  Object.entries(ERROR_CODES).map(([code, info]) => [
    `\`${code}\``,
    String(info.status),
    info.retryable ? 'yes' : 'no',
    info.from === 'yoga' ? `${info.meaning} Answered by graphql-yoga.` : info.meaning,
  ]),
);
await writeSection(new URL('../docs/errors.md', import.meta.url), 'error-table', table, 'npm run docs:errors');

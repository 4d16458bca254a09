/** `npm run schema:print` writes schema/schema.graphql; `--check` fails when it is stale. */
import { readFile, writeFile } from 'node:fs/promises';
import { printRunwaySchema } from './graphql/schema.js';

const file = new URL('../schema/schema.graphql', import.meta.url);
const printed = printRunwaySchema();

if (process.argv.includes('--check')) {
  const committed = await readFile(file, 'utf8').catch(() => '');
  if (committed !== printed) {
    console.error('schema/schema.graphql is stale: run `npm run schema:print` and commit it.');
    process.exit(1);
  }
  console.log('schema/schema.graphql is up to date.');
} else {
  await writeFile(file, printed);
  console.log('wrote schema/schema.graphql');
}

import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql 16 has no "exports" map: Node loads index.js for every importer, but vite
    // would give our sources index.mjs while graphql-ws and yoga get index.js, two
    // GraphQLError classes. Load it as Node does.
    alias: { graphql: 'graphql/index.js' },
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Each file starts its own server and database; two cores run two files at a time.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});

/**
 * Runs before every test file (vitest.config.ts, setupFiles). The environment `npm test`
 * was given decides which projects run, not which drivers a file uses: those are its
 * project's (./database.ts). The processes a spec starts inherit this environment, so
 * they get the database their spec passes them, never the one `npm test` was given, and
 * fan events out through Redis in the postgres+redis project only.
 */
import { drivers } from './database.js';

delete process.env.DATABASE_URL;
if (drivers.redisUrl) process.env.REDIS_URL = drivers.redisUrl;
else delete process.env.REDIS_URL;

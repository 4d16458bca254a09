// The schema pool's thread when Runway runs from its TypeScript sources (tsx, vitest): a
// worker thread does not inherit tsx's loader on Node 20, so it registers it, then loads
// the thread module. The build runs schema-thread.js directly.
import { register } from 'tsx/esm/api';

register();
export const { answer, warmUp } = await import('./schema-thread.ts');

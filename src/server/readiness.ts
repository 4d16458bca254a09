/**
 * /health (the process answers) and /ready (it can serve: its database is reachable and
 * migrated, and it is not draining). Neither needs a key.
 */
import type { ServerResponse } from 'node:http';
import { sendJson } from './http-answers.js';

export interface Readiness {
  /** Answers /health and /ready; false for any other path (nothing written). */
  answer(path: string | undefined, res: ServerResponse): boolean;
  /**
   * The first step of a shutdown: /ready answers 503 from now on, so that a load
   * balancer moves traffic elsewhere, while every request is still served.
   */
  drain(): void;
}

/**
 * @param ready is the database reachable and migrated?
 * @param timeoutMs how long a probe waits for `ready` before it answers "not ready" (why: see config.ts).
 */
export function createReadiness(ready: () => Promise<boolean>, timeoutMs: number): Readiness {
  let draining = false;
  // One check at a time: probes that arrive while it is under way (a dead pool may hold it
  // until the database is back) share its answer, each bounded by the timeout.
  let checking: Promise<boolean> | undefined;
  function isReady(): Promise<boolean> {
    checking ??= ready()
      .catch(() => false)
      .finally(() => (checking = undefined));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    return Promise.race([checking, late]).finally(() => clearTimeout(timer));
  }
  return {
    answer(path, res) {
      if (path === '/health') {
        sendJson(res, 200, { status: 'ok' });
        return true;
      }
      if (path !== '/ready') return false;
      if (draining) sendJson(res, 503, { status: 'draining' });
      else void isReady().then((ok) => sendJson(res, ok ? 200 : 503, { status: ok ? 'ready' : 'not ready' }));
      return true;
    },
    drain() {
      draining = true;
    },
  };
}

/**
 * API keys: `Authorization: Bearer <key>` on HTTP, `connectionParams.authorization` on
 * websockets. Keys are compared by their SHA-256 in constant time, so neither a timing
 * difference nor a key in memory longer than needed gives one away.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export interface Authenticator {
  /** True when keys are configured (otherwise: open local mode, everyone is let in). */
  readonly required: boolean;
  /** The key's project, or undefined for a missing or unknown key. */
  projectOf(authorization: unknown): string | undefined;
}

const digest = (key: string) => createHash('sha256').update(key).digest();

export function createAuthenticator(keys: ReadonlyMap<string, string>): Authenticator {
  const known = [...keys].map(([key, project]) => ({ hash: digest(key), project }));
  return {
    required: known.length > 0,
    projectOf(authorization) {
      if (typeof authorization !== 'string') return undefined;
      const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
      const key = match ? match[1]! : authorization.trim();
      if (!key) return undefined;
      const hash = digest(key);
      let project: string | undefined;
      // Compare with every key, whatever matches: the time taken says nothing.
      for (const k of known) if (timingSafeEqual(k.hash, hash)) project = k.project;
      return project;
    },
  };
}

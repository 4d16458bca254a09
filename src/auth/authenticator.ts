/**
 * Who is calling. API keys come from API_KEYS and from the database (`npm run
 * key:create`); either way a key is looked up by its SHA-256. `Authorization: Bearer
 * <key>` on HTTP, `connectionParams.authorization` on websockets (the bare key is
 * accepted there too).
 *
 * With no key anywhere, Runway is in open local mode: everyone is the caller "local" of
 * the project "default". Once a key exists (one created while the server runs is noticed
 * within `keyPollMs`), a key is required, and stays required even if every key is revoked.
 *
 * A key revoked (`npm run key:revoke`) stops working on every process within
 * `revokePollMs`: each process polls the keys revoked since its last look (on the
 * database's clock), drops them from its cache and tells its listeners (the websocket
 * server closes their sockets). A poll, not a notification: it works the same with either
 * event transport, and a process that was away for a while still sees every revoke.
 */
import type { Db } from '../db/client.js';
import type { Caller } from '../graphql/context.js';
import type { Logger } from '../log.js';
import { anyApiKeyStored, findApiKey, hashApiKey, keysRevokedSince } from './api-keys.js';

export const OPEN_MODE_CALLER: Caller = Object.freeze({ projectId: 'default', keyId: 'local' });

export interface Authenticator {
  /** False in open local mode. */
  readonly required: boolean;
  /**
   * The caller a credential stands for, or undefined for a missing, unknown or revoked key.
   * Answered at once, not as a promise, when no database lookup is needed (open local mode,
   * an API_KEYS key, a lookup still cached): the request goes on in the same turn, without
   * a promise of its own (one of the layers whose removal made REST run reads 9% faster,
   * docs/performance.md).
   */
  authenticate(authorization: unknown): Caller | undefined | Promise<Caller | undefined>;
  /** Calls `listener` with the ids of keys revoked from now on; the returned function stops it. */
  onRevoked(listener: (keyIds: ReadonlySet<string>) => void): () => void;
  close(): void;
}

export interface AuthenticatorOptions {
  /** API_KEYS: key -> project. */
  envKeys: ReadonlyMap<string, string>;
  /** Where `npm run key:create` stores keys; none: API_KEYS only. */
  db?: Db | undefined;
  /** How long a database key's lookup (found or not) is trusted; a revoke is seen sooner, by the revocation poll. @default 30000 */
  cacheMs?: number;
  /** How often open local mode checks whether a key was created. @default 5000 */
  keyPollMs?: number;
  /** How often the database is asked which keys were revoked (what a revoke takes at most, plus a query). @default 500 */
  revokePollMs?: number;
  logger?: Logger | undefined;
}

/** Lookups kept at most; beyond, the cache starts over (a flood of made-up keys cannot grow it). */
const MAX_CACHED = 10_000;

export async function createAuthenticator(options: AuthenticatorOptions): Promise<Authenticator> {
  const { db, logger } = options;
  const cacheMs = options.cacheMs ?? 30_000;
  const fromEnv = new Map<string, Caller>(
    [...options.envKeys].map(([key, projectId]) => {
      const hash = hashApiKey(key);
      // An id that names the key in logs and rate limits without giving it away.
      return [hash, { projectId, keyId: `env:${hash.slice(0, 12)}` }];
    }),
  );
  const cache = new Map<string, { caller: Caller | undefined; until: number }>();
  // The hashes of the keys seen lately: a SHA-256 per request was ~1% of a single-row
  // read's CPU, and a gateway sees the same few keys all day. (The keys are in this
  // process's memory anyway, in every request.)
  const hashes = new Map<string, string>();
  let required = fromEnv.size > 0 || (db !== undefined && (await anyApiKeyStored(db)));

  let poll: NodeJS.Timeout | undefined;
  if (!required && db) {
    poll = setInterval(() => {
      anyApiKeyStored(db).then(
        (found) => {
          if (!found || required) return;
          required = true;
          clearInterval(poll);
          logger?.warn('An API key was created: from now on every request needs a valid key.');
        },
        (error: unknown) => logger?.warn({ err: error }, 'could not check for API keys'),
      );
    }, options.keyPollMs ?? 5000);
    poll.unref();
  }

  // Revocations: polled on the database clock, from a little before the last look (a
  // revoke stamped before it may commit after it).
  const revokedListeners = new Set<(keyIds: ReadonlySet<string>) => void>();
  let revokePoll: NodeJS.Timeout | undefined;
  if (db) {
    let since: number | undefined;
    let polling = false;
    const pollRevoked = async () => {
      if (polling || !required) return;
      polling = true;
      try {
        const seen = await keysRevokedSince(db, (since ?? Number.MAX_SAFE_INTEGER) - 2);
        // The first look only sets the clock: keys revoked before this process started were never cached.
        if (since !== undefined && seen.ids.length > 0) revoked(new Set(seen.ids));
        since = seen.now;
      } catch (error) {
        logger?.warn({ err: error }, 'could not check for revoked API keys');
      } finally {
        polling = false;
      }
    };
    revokePoll = setInterval(() => void pollRevoked(), options.revokePollMs ?? 500);
    revokePoll.unref();
    void pollRevoked();
  }

  /** +1 at every revocation seen: a lookup that began before one may have read a key it revoked, and is not cached. */
  let revocations = 0;
  function revoked(keyIds: ReadonlySet<string>): void {
    revocations += 1;
    for (const [hash, entry] of cache) if (entry.caller && keyIds.has(entry.caller.keyId)) cache.delete(hash);
    for (const listener of revokedListeners) listener(keyIds);
  }

  function lookUp(hash: string): Caller | undefined | Promise<Caller | undefined> {
    const known = fromEnv.get(hash);
    if (known || !db) return known;
    const cached = cache.get(hash);
    if (cached && cached.until > Date.now()) return cached.caller;
    return lookUpStored(db, hash);
  }

  async function lookUpStored(database: Db, hash: string): Promise<Caller | undefined> {
    const generation = revocations;
    const row = await findApiKey(database, hash);
    const caller = row ? { projectId: row.projectId, keyId: row.id } : undefined;
    if (generation !== revocations) return caller;
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(hash, { caller, until: Date.now() + cacheMs });
    return caller;
  }

  return {
    get required() {
      return required;
    },
    authenticate(authorization) {
      if (!required) return OPEN_MODE_CALLER;
      if (typeof authorization !== 'string') return undefined;
      const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
      const key = match?.[1] ?? authorization.trim();
      if (!key || key.length > 512 || /\s/.test(key)) return undefined;
      let hash = hashes.get(key);
      if (hash === undefined) {
        if (hashes.size >= MAX_CACHED) hashes.clear();
        hash = hashApiKey(key);
        hashes.set(key, hash);
      }
      return lookUp(hash);
    },
    onRevoked(listener) {
      revokedListeners.add(listener);
      return () => void revokedListeners.delete(listener);
    },
    close() {
      clearInterval(poll);
      clearInterval(revokePoll);
    },
  };
}

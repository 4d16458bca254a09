/**
 * API keys kept in the database. A key is `rw_` + 32 random bytes (base64url); only its
 * SHA-256 is stored, and a presented key is found by that hash. A hash lookup reveals
 * nothing usable by timing: learning a prefix of a hash does not help find a key.
 */
import { createHash, randomBytes } from 'node:crypto';
import { and, asc, eq, gte, isNull, sql } from 'drizzle-orm';
import { rowsOf, type Executor } from '../db/client.js';
import { apiKeys } from '../db/schema.js';
import { newId } from '../domain/ids.js';

/** What a project name may be: it shows in logs and is compared as is. */
export const PROJECT_NAME = /^[\w.-]{1,64}$/;

export const hashApiKey = (key: string): string => createHash('sha256').update(key).digest('hex');

export function generateApiKey(): string {
  return `rw_${randomBytes(32).toString('base64url')}`;
}

/** Stores a new key for the project and returns it: the only time it is ever visible. */
export async function createApiKey(db: Executor, projectId: string, createdAt: number): Promise<{ id: string; key: string }> {
  if (!PROJECT_NAME.test(projectId)) {
    throw new Error(`A project name is 1 to 64 letters, digits, '_', '.' or '-' (got '${projectId}').`);
  }
  const key = generateApiKey();
  const id = newId('key');
  await db.insert(apiKeys).values({ id, projectId, keyHash: hashApiKey(key), createdAt });
  return { id, key };
}

/** The live (not revoked) key with this hash. */
export async function findApiKey(db: Executor, keyHash: string): Promise<{ id: string; projectId: string } | undefined> {
  const [row] = await db
    .select({ id: apiKeys.id, projectId: apiKeys.projectId })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, keyHash), isNull(apiKeys.revokedAt)))
    .limit(1);
  return row;
}

/** Whether any key was ever stored: then keys are required, even if all are revoked. */
export async function anyApiKeyStored(db: Executor): Promise<boolean> {
  const [row] = await db.select({ id: apiKeys.id }).from(apiKeys).limit(1);
  return row !== undefined;
}

/** What `npm run key:list` shows of a key: never the key, nor its hash. */
export interface ApiKeyListing {
  id: string;
  projectId: string;
  createdAt: number;
  revokedAt: number | null;
}

/** Every stored key (of one project, given), oldest first. */
export async function listApiKeys(db: Executor, projectId?: string): Promise<ApiKeyListing[]> {
  return db
    .select({ id: apiKeys.id, projectId: apiKeys.projectId, createdAt: apiKeys.createdAt, revokedAt: apiKeys.revokedAt })
    .from(apiKeys)
    .where(projectId === undefined ? undefined : eq(apiKeys.projectId, projectId))
    .orderBy(asc(apiKeys.id));
}

/**
 * Revokes a key, stamped on the database's clock (gateways compare it with that clock,
 * not with their own). Answers the key as it is now: already revoked keeps its first
 * stamp; undefined when there is no such key.
 */
export async function revokeApiKey(db: Executor, id: string): Promise<ApiKeyListing | undefined> {
  await db
    .update(apiKeys)
    .set({ revokedAt: sql`extract(epoch from now())::bigint` })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)));
  const [row] = await listKey(db, id);
  return row;
}

function listKey(db: Executor, id: string) {
  return db
    .select({ id: apiKeys.id, projectId: apiKeys.projectId, createdAt: apiKeys.createdAt, revokedAt: apiKeys.revokedAt })
    .from(apiKeys)
    .where(eq(apiKeys.id, id))
    .limit(1);
}

/**
 * The keys revoked at or after `since` (Unix seconds, database clock), and the database's
 * clock now: what a gateway polls to drop revoked keys from its cache and close their sockets.
 */
export async function keysRevokedSince(db: Executor, since: number): Promise<{ ids: string[]; now: number }> {
  const [rows, [clock]] = await Promise.all([
    db.select({ id: apiKeys.id }).from(apiKeys).where(gte(apiKeys.revokedAt, since)),
    rowsOf<{ now: number | string }>(db, sql`select extract(epoch from now())::bigint as now`),
  ]);
  return { ids: rows.map((r) => r.id), now: Number(clock?.now ?? since) };
}

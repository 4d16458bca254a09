/**
 * API keys kept in the database. A key is `rw_` + 32 random bytes (base64url); only its
 * SHA-256 is stored, and a presented key is found by that hash. A hash lookup reveals
 * nothing usable by timing: learning a prefix of a hash does not help find a key.
 */
import { createHash, randomBytes } from 'node:crypto';
import { and, eq, isNull } from 'drizzle-orm';
import type { Executor } from '../db/client.js';
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

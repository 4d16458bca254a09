/**
 * PostgreSQL LISTEN/NOTIFY on either driver. A NOTIFY is delivered at commit, to every
 * process listening on the server (PGlite: to this process).
 *
 * A commit that notifies takes a server-wide lock, so callers send at most one
 * notification per transaction and keep payloads to ids.
 */
import { sql } from 'drizzle-orm';
import type { Database, Executor } from './client.js';

/** Sends `payload` on `channel` when the surrounding transaction commits. */
export async function notify(ex: Executor, channel: string, payload: string): Promise<void> {
  await ex.execute(sql`select pg_notify(${channel}, ${payload})`);
}

/**
 * Calls `onMessage` for every notification on `channel`. postgres.js re-listens by itself
 * after a dropped connection and then calls `onListen` again: a caller uses it to catch
 * up on what it may have missed meanwhile.
 */
export async function listen(
  database: Database,
  channel: string,
  onMessage: (payload: string) => void,
  onListen: () => void = () => {},
): Promise<() => Promise<void>> {
  if (database.driver === 'postgres') {
    const request = await database.client.listen(channel, onMessage, onListen);
    return () => request.unlisten();
  }
  const unlisten = await database.client.listen(channel, onMessage);
  onListen();
  return () => unlisten();
}

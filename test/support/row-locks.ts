import postgres from 'postgres';

/**
 * A transaction on a connection of its own that takes row locks with `lockingQuery` (its
 * one parameter: `ids`) and holds them until released: writes to those rows wait.
 */
export async function holdRows(url: string, lockingQuery: string, ids: string[]) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const holding = new Promise<void>((r) => (locked = r));
  const transaction = sql.begin(async (tx) => {
    await tx.unsafe(lockingQuery, [ids]);
    locked();
    await released;
  });
  await Promise.race([holding, transaction]);
  return {
    async release() {
      release();
      await transaction;
      await sql.end();
    },
  };
}

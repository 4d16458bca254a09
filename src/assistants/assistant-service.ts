import { and, eq, sql } from 'drizzle-orm';
import type { Db, Executor } from '../db/client.js';
import { preparedPer } from '../db/prepared.js';
import { assistants, type AssistantRow } from '../db/schema.js';
import { newId } from '../domain/ids.js';
import type { Metadata, Tool } from '../domain/run.js';
import { idempotentRequest, once, recordKey } from '../idempotency/idempotency.js';

export interface CreateAssistantInput {
  model: string;
  name?: string | null;
  description?: string | null;
  instructions?: string | null;
  tools?: Tool[] | null;
  metadata?: Metadata | null;
}

export class AssistantService {
  constructor(private readonly deps: { db: Db; clock: () => number }) {}

  /** A new assistant; with an idempotency key, a retry gets the first one. */
  async create(projectId: string, input: CreateAssistantInput, idempotencyKey?: string | null): Promise<AssistantRow> {
    const { db, clock } = this.deps;
    const now = clock();
    const insert = async (ex: Executor) => {
      const [row] = await ex
        .insert(assistants)
        .values({
          id: newId('asst'),
          projectId,
          createdAt: now,
          model: input.model,
          name: input.name ?? null,
          description: input.description ?? null,
          instructions: input.instructions ?? null,
          tools: input.tools ?? [],
          metadata: input.metadata ?? {},
        })
        .returning();
      if (!row) throw new Error('insert returned no row');
      return row;
    };
    const request = idempotentRequest(projectId, idempotencyKey, 'createAssistant', input);
    if (!request) return insert(db);
    return once(
      db,
      request,
      () =>
        db.transaction(async (tx) => {
          const row = await insert(tx);
          await recordKey(tx, request, row.id, now);
          return row;
        }),
      (id) => this.get(projectId, id),
    );
  }

  /** The assistant, if it exists in this project. */
  async get(projectId: string, id: string): Promise<AssistantRow | undefined> {
    return findAssistant(this.deps.db, projectId, id);
  }
}

const assistantInProject = preparedPer((ex) =>
  ex
    .select()
    .from(assistants)
    .where(and(eq(assistants.id, sql.placeholder('id')), eq(assistants.projectId, sql.placeholder('projectId'))))
    .prepare('assistant_in_project'),
);

/**
 * Assistants found, per database: an assistant never changes once created (there is no
 * modify or delete), so a row read once is the row for good. Only rows found are kept (an
 * id not found may be created later). Bounded: beyond MAX_CACHED it starts over.
 * Were assistants ever modified or deleted, this is the place to forget them.
 */
const found = new WeakMap<Executor, Map<string, AssistantRow>>();
const MAX_CACHED = 10_000;

/** The assistant, if it exists in this project (another project's is as absent as a missing one). */
export async function findAssistant(ex: Executor, projectId: string, id: string): Promise<AssistantRow | undefined> {
  let rows = found.get(ex);
  if (!rows) found.set(ex, (rows = new Map()));
  const key = `${projectId}\u0000${id}`;
  const cached = rows.get(key);
  if (cached) return cached;
  const [row] = await assistantInProject(ex).execute({ id, projectId });
  if (row) {
    if (rows.size >= MAX_CACHED) rows.clear();
    rows.set(key, row);
  }
  return row;
}

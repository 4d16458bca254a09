import { and, eq, sql } from 'drizzle-orm';
import type { Db, Executor } from '../db/client.js';
import { planKeysetPage, readList, type ListArgs, type ListPage, type Page, type PageArgs } from '../db/keyset.js';
import { preparedPer } from '../db/prepared.js';
import { assistants, type AssistantRow } from '../db/schema.js';
import { deletion, type Deletion } from '../domain/deletion.js';
import { ModelNotAvailableError, NotFoundError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import type { Metadata, ResponseFormat, Tool } from '../domain/run.js';
import { forgetResults, idempotentRequest, once, recordKey } from '../idempotency/idempotency.js';

export interface CreateAssistantInput {
  model: string;
  name?: string | null;
  description?: string | null;
  instructions?: string | null;
  tools?: Tool[] | null;
  metadata?: Metadata | null;
  /** What its runs take unless they say otherwise; null or absent: the API's default (1, 1, auto). */
  temperature?: number | null;
  topP?: number | null;
  responseFormat?: ResponseFormat | null;
}

/**
 * What a modify changes, as the Assistants API's modify takes it: a field left out (or
 * undefined) stays as it is; null clears a name, description or instructions, and leaves
 * no tools or no metadata. Metadata given replaces the old metadata whole.
 */
export interface ModifyAssistantInput {
  model?: string | undefined;
  name?: string | null | undefined;
  description?: string | null | undefined;
  instructions?: string | null | undefined;
  tools?: Tool[] | null | undefined;
  metadata?: Metadata | null | undefined;
  /** null: back to the API's default (1, 1, auto). */
  temperature?: number | null | undefined;
  topP?: number | null | undefined;
  responseFormat?: ResponseFormat | null | undefined;
}

export interface AssistantServiceDeps {
  db: Db;
  clock: () => number;
  /** Whether a model route serves the model (none given: every model is taken, as in specs of the store alone). */
  modelSupported?: ((model: string) => boolean) | undefined;
}

export class AssistantService {
  constructor(private readonly deps: AssistantServiceDeps) {}

  /** Refuses a model no route serves: every run of the assistant would fail. */
  private checkModel(model: string | undefined): void {
    const { modelSupported } = this.deps;
    if (model !== undefined && modelSupported && !modelSupported(model)) throw new ModelNotAvailableError(model, 'input.model');
  }

  /**
   * A new assistant; with an idempotency key, a retry gets the first one. MODEL_NOT_AVAILABLE
   * when no model route serves its model.
   */
  async create(projectId: string, input: CreateAssistantInput, idempotencyKey?: string | null): Promise<AssistantRow> {
    const { db, clock } = this.deps;
    this.checkModel(input.model);
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
          temperature: input.temperature ?? 1,
          topP: input.topP ?? 1,
          responseFormat: input.responseFormat ?? { type: 'auto' },
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

  /** The assistant, if it exists in this project: read as it is now (another process may have changed it). */
  async get(projectId: string, id: string): Promise<AssistantRow | undefined> {
    return findAssistant(this.deps.db, projectId, id, { fresh: true });
  }

  /** Those of these assistants that are in this project (a node lookup), in no particular order: one statement. */
  async manyInProject(projectId: string, ids: readonly string[]): Promise<AssistantRow[]> {
    return assistantsInProject(this.deps.db).execute({ ids: [...ids], projectId });
  }

  /** A page of the project's assistants, as the Assistants API lists them (object ids as cursors, newest first by default). */
  listAssistants(projectId: string, args: ListArgs = {}): Promise<ListPage<AssistantRow>> {
    return readList(args, 'asst', (pageArgs) => this.page(projectId, pageArgs));
  }

  /** A page of the project's assistants as a Relay connection pages them (newest first by default). One statement. */
  async page(projectId: string, args: PageArgs): Promise<Page<AssistantRow>> {
    const plan = planKeysetPage(args, 'asst');
    const rows = await this.deps.db
      .select()
      .from(assistants)
      .where(and(eq(assistants.projectId, projectId), plan.where(assistants.id)))
      .orderBy(plan.orderBy(assistants.id))
      .limit(plan.limit);
    return plan.page(rows);
  }

  /**
   * Changes what `input` gives (see ModifyAssistantInput); NOT_FOUND when the project has no
   * such assistant, MODEL_NOT_AVAILABLE when no model route serves the new model. One statement.
   */
  async modify(projectId: string, id: string, input: ModifyAssistantInput): Promise<AssistantRow> {
    const { db } = this.deps;
    this.checkModel(input.model);
    const [row] = await db
      .update(assistants)
      .set({
        ...(input.model !== undefined ? { model: input.model } : {}),
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.description !== undefined ? { description: input.description } : {}),
        ...(input.instructions !== undefined ? { instructions: input.instructions } : {}),
        ...(input.tools !== undefined ? { tools: input.tools ?? [] } : {}),
        ...(input.metadata !== undefined ? { metadata: input.metadata ?? {} } : {}),
        ...(input.temperature !== undefined ? { temperature: input.temperature ?? 1 } : {}),
        ...(input.topP !== undefined ? { topP: input.topP ?? 1 } : {}),
        ...(input.responseFormat !== undefined ? { responseFormat: input.responseFormat ?? { type: 'auto' as const } } : {}),
        revision: sql`${assistants.revision} + 1`,
      })
      .where(and(eq(assistants.id, id), eq(assistants.projectId, projectId)))
      .returning();
    forget(db, projectId, id);
    if (!row) throw new NotFoundError('assistant', id);
    return row;
  }

  /**
   * Deletes the assistant (and the idempotency key that created it); its runs, and the
   * messages and steps they wrote, stay, with its id. NOT_FOUND when the project has no
   * such assistant.
   */
  async delete(projectId: string, id: string): Promise<Deletion<'assistant.deleted'>> {
    const { db } = this.deps;
    const deleted = await db.transaction(async (tx) => {
      const [row] = await tx
        .delete(assistants)
        .where(and(eq(assistants.id, id), eq(assistants.projectId, projectId)))
        .returning({ id: assistants.id });
      if (row) await forgetResults(tx, projectId, [id]);
      return row !== undefined;
    });
    forget(db, projectId, id);
    if (!deleted) throw new NotFoundError('assistant', id);
    return deletion('assistant.deleted', id);
  }
}

const assistantInProject = preparedPer((ex) =>
  ex
    .select()
    .from(assistants)
    .where(and(eq(assistants.id, sql.placeholder('id')), eq(assistants.projectId, sql.placeholder('projectId'))))
    .prepare('assistant_in_project'),
);

const assistantsInProject = preparedPer((ex) =>
  ex
    .select()
    .from(assistants)
    .where(and(sql`${assistants.id} = any(${sql.placeholder('ids')}::text[])`, eq(assistants.projectId, sql.placeholder('projectId'))))
    .prepare('assistants_in_project'),
);

/**
 * Assistants found, per database, so that createRun reads each assistant once: a row may
 * be stale (another process modified or deleted the assistant since), and createRun's
 * statement makes a run only from the revision it was given, so a stale row costs a read
 * again, never a run made from it. Only rows found are kept (an id not found may be
 * created later). Bounded: beyond MAX_CACHED it starts over.
 */
const found = new WeakMap<Executor, Map<string, AssistantRow>>();
const MAX_CACHED = 10_000;

const cacheKey = (projectId: string, id: string) => `${projectId}\u0000${id}`;

function forget(ex: Executor, projectId: string, id: string): void {
  found.get(ex)?.delete(cacheKey(projectId, id));
}

/**
 * The assistant, if it exists in this project (another project's is as absent as a
 * missing one): as this process last read it, or with `fresh`, as it is now.
 */
export async function findAssistant(
  ex: Executor,
  projectId: string,
  id: string,
  options: { fresh?: boolean } = {},
): Promise<AssistantRow | undefined> {
  let rows = found.get(ex);
  if (!rows) found.set(ex, (rows = new Map()));
  const key = cacheKey(projectId, id);
  const cached = options.fresh ? undefined : rows.get(key);
  if (cached) return cached;
  const [row] = await assistantInProject(ex).execute({ id, projectId });
  if (row) {
    if (rows.size >= MAX_CACHED) rows.clear();
    rows.set(key, row);
  } else {
    rows.delete(key);
  }
  return row;
}

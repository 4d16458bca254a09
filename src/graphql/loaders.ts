/**
 * Per-request batch loaders (dataloader): fields asked for many parents in one request
 * are read in one statement. A loader lives as long as its request's context.
 */
import DataLoader from 'dataloader';
import { DEFAULT_PAGE_SIZE, type Page, type PageArgs } from '../db/keyset.js';
import type { RunStepRow } from '../db/schema.js';
import type { FirstStepsKey } from '../runs/index.js';
import type { GraphQLContext } from './context.js';

const stepLoaders = new WeakMap<GraphQLContext, DataLoader<FirstStepsKey, Page<RunStepRow>, string>>();

/**
 * Run.steps: a first page (no cursor) is batched across every run of the request;
 * a page after or before a cursor is read on its own.
 */
export function loadSteps(ctx: GraphQLContext, runId: string, args: PageArgs): Promise<Page<RunStepRow>> {
  if (args.after != null || args.before != null || args.last != null) return ctx.runs.pageSteps(runId, args);
  let loader = stepLoaders.get(ctx);
  if (!loader) {
    loader = new DataLoader((keys) => ctx.runs.firstStepPages(keys), {
      cacheKeyFn: (k) => `${k.runId}:${k.order}:${k.size}`,
    });
    stepLoaders.set(ctx, loader);
  }
  return loader.load({ runId, order: args.order ?? 'asc', size: args.first ?? DEFAULT_PAGE_SIZE });
}

/**
 * A model call, observed: its duration by provider and outcome, its failures by code,
 * and (tracing on) a client span, the parent of the calls' HTTP requests.
 */
import { performance } from 'node:perf_hooks';
import { modelCalls, modelErrors } from './metrics.js';
import { failed, SpanKind, startSpan, tracingOn, withSpan } from './tracing.js';

/**
 * Runs `call` observed. `codeOf` names a failure's code (the run's lastError code);
 * a call aborted through `signal` (a cancel, an expiry, a shutdown) counts as cancelled.
 */
export async function observedModelCall<T>(
  provider: string,
  model: string,
  signal: AbortSignal,
  codeOf: (error: unknown) => string,
  call: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  const span = tracingOn
    ? startSpan(`model ${model}`, { 'gen_ai.system': provider, 'gen_ai.request.model': model }, SpanKind.CLIENT)
    : undefined;
  try {
    const result = await (span ? withSpan(span, call) : call());
    modelCalls.labels(provider, 'ok').observe((performance.now() - started) / 1000);
    return result;
  } catch (error) {
    const cancelled = signal.aborted;
    modelCalls.labels(provider, cancelled ? 'cancelled' : 'error').observe((performance.now() - started) / 1000);
    if (!cancelled) modelErrors.labels(provider, codeOf(error)).inc();
    if (span) failed(span, error);
    throw error;
  } finally {
    span?.end();
  }
}

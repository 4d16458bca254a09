/**
 * OpenTelemetry traces, off unless configured (OTEL_TRACES_EXPORTER, or an OTLP endpoint):
 * the SDK and its exporter are imported only by {@link startTracing}, and every span this
 * code makes is behind {@link tracingOn}, so a server without tracing allocates nothing
 * for it (the API package alone is loaded; without a provider it is a no-op anyway).
 *
 * Spans: one per HTTP request (REST named by its route pattern), one per GraphQL
 * operation, one per database statement (and transaction), one per model call, and one
 * per run execution in the worker, a child of the request that created the run: its W3C
 * traceparent is stored with the run (runs.traceparent), so the trace goes on in whichever
 * process claims it, after any delay.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';

/** Whether spans are made. Read it before building anything a span needs. */
export let tracingOn = false;

const tracer = () => trace.getTracer('runway');

export interface TracingOptions {
  /** `otlp` (OTLP over HTTP, configured by the standard OTEL_EXPORTER_OTLP_* variables) or `console`. */
  exporter: 'otlp' | 'console' | SpanExporter;
  /** The resource's service.name. @default 'runway' */
  serviceName?: string;
  /** Export each span as it ends (specs) instead of in batches. @default false */
  immediate?: boolean;
}

let stopCurrent: (() => Promise<void>) | undefined;

/**
 * Registers the SDK as this process's tracer provider (with the AsyncLocalStorage context
 * manager and the W3C trace-context propagator). Resolves with its shutdown, which
 * flushes what is batched. Once per process: a second start replaces the first.
 */
export async function startTracing(options: TracingOptions): Promise<() => Promise<void>> {
  await stopCurrent?.();
  const [{ NodeTracerProvider }, base, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
  ]);
  let exporter: SpanExporter;
  if (options.exporter === 'otlp') {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    exporter = new OTLPTraceExporter();
  } else if (options.exporter === 'console') exporter = new base.ConsoleSpanExporter();
  else exporter = options.exporter;
  const processor = options.immediate ? new base.SimpleSpanProcessor(exporter) : new base.BatchSpanProcessor(exporter);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName ?? 'runway' }),
    spanProcessors: [processor],
  });
  provider.register();
  tracingOn = true;
  const stop = async () => {
    if (stopCurrent !== stop) return;
    stopCurrent = undefined;
    tracingOn = false;
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  };
  stopCurrent = stop;
  return stop;
}

/**
 * Runs `fn` in a new active span (a child of the active one), ending it when `fn`
 * settles, with an error status if it throws. Without tracing, just `fn()`.
 */
export function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span | undefined) => Promise<T>,
  kind = SpanKind.INTERNAL,
): Promise<T> {
  if (!tracingOn) return fn(undefined);
  return tracer().startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Marks the span failed by `error`. */
export function failed(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}

/** A span started now (not made active): the caller ends it, and runs its children in {@link withSpan}. */
export function startSpan(name: string, attributes: Attributes, kind = SpanKind.INTERNAL, parent: Context = context.active()): Span {
  return tracer().startSpan(name, { kind, attributes }, parent);
}

/** Runs `fn` with `span` active (its spans become the span's children). */
export function withSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** The active span's W3C traceparent (to store with a run), or null without tracing or span. */
export function currentTraceparent(): string | null {
  if (!tracingOn) return null;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier['traceparent'] ?? null;
}

/** The context a stored (or received) traceparent continues; the root context without one. */
export function contextOf(headers: Record<string, string | string[] | undefined> | { traceparent: string | null }): Context {
  return propagation.extract(ROOT_CONTEXT, headers);
}

export { SpanKind };

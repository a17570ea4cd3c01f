// OpenTelemetry tracing. Off unless the standard OTEL_* variables ask for it:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set (OTLP
// over HTTP/protobuf), and OTEL_TRACES_EXPORTER not `none` (OTEL_SDK_DISABLED
// turns it off too). The exporter reads the rest (headers, timeout) itself.
// While off, the @opentelemetry/api calls below are no-ops that cost nothing.
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, detectResources, envDetector } from "@opentelemetry/resources";
import { BatchSpanProcessor, type SpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

export { SpanKind };

/** The tracer every agentd span comes from. */
export const tracer = () => trace.getTracer("agentd");

/** Whether the environment asks for traces to be exported. */
function tracingWanted(env: Record<string, string | undefined>): boolean {
  if (/^true$/i.test(env.OTEL_SDK_DISABLED ?? "")) return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "otlp").split(",").map((x) => x.trim());
  if (!exporters.includes("otlp")) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export interface Tracing {
  /** Exports the spans still buffered and stops. */
  shutdown(): Promise<void>;
}

/** Registers a global tracer provider (W3C traceparent propagation, async
 * context) with the given processors, or the OTLP exporter from OTEL_*.
 * SDK 3 has no NodeTracerProvider.register(), so the three globals it used to
 * set are set here; the resource reads OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES through the env detector (the provider alone no
 * longer does). */
export function startTracing(opts: { serviceName?: string; processors?: SpanProcessor[] } = {}): Tracing {
  if (opts.serviceName && !process.env.OTEL_SERVICE_NAME) process.env.OTEL_SERVICE_NAME = opts.serviceName;
  const provider = new TracerProvider({
    resource: defaultResource().merge(detectResources({ detectors: [envDetector] })),
    spanProcessors: opts.processors ?? [new BatchSpanProcessor({ exporter: new OTLPTraceExporter() })],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  trace.setGlobalTracerProvider(provider);
  return {
    shutdown: async () => {
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

/** Starts tracing when the environment asks for it; undefined otherwise. */
export function startTracingFromEnv(serviceName: string): Tracing | undefined {
  return tracingWanted(process.env) ? startTracing({ serviceName }) : undefined;
}

/** The W3C `traceparent` of a context (default: the active one), or null when it carries no sampled trace. */
export function traceparentOf(ctx: Context = context.active()): string | null {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent ?? null;
}

/** A context continuing the trace of a stored `traceparent` (the root context if none). */
export function contextOf(traceparent: string | null | undefined): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
}

/** Runs `fn` inside a new span (a child of `parent`, default the active context), ending it when `fn` settles. */
export async function inSpan<T>(
  name: string,
  opts: { parent?: Context; kind?: SpanKind; attributes?: Record<string, string | number | boolean> },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const span = tracer().startSpan(
    name,
    { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) },
    opts.parent ?? context.active(),
  );
  try {
    return await context.with(trace.setSpan(opts.parent ?? context.active(), span), () => fn(span));
  } catch (error) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    throw error;
  } finally {
    span.end();
  }
}

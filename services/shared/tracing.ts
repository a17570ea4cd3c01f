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
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { ConfigError } from "./config.js";

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

const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
];

/** The sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (a ratio from 0 to 1, default 1)
 * ask for, as the OpenTelemetry spec names them; SDK 3 no longer reads them itself. Default
 * parentbased_always_on: every trace, and a caller's sampling decision is kept. A value that
 * is not one of these stops start-up (ConfigError) rather than tracing in a way nobody asked for. */
export function samplerFromEnv(env: Record<string, string | undefined>): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? "").trim().toLowerCase() || "parentbased_always_on";
  if (!SAMPLERS.includes(name))
    throw new ConfigError(
      `invalid setting OTEL_TRACES_SAMPLER=${JSON.stringify(env.OTEL_TRACES_SAMPLER)}: must be ${SAMPLERS.join(", ")}`,
    );
  const arg = (env.OTEL_TRACES_SAMPLER_ARG ?? "").trim();
  const ratio = arg === "" ? 1 : Number(arg);
  if (name.endsWith("traceidratio") && !(ratio >= 0 && ratio <= 1))
    throw new ConfigError(
      `invalid setting OTEL_TRACES_SAMPLER_ARG=${JSON.stringify(arg)}: must be a ratio from 0 to 1`,
    );
  const root = name.endsWith("always_on")
    ? new AlwaysOnSampler()
    : name.endsWith("always_off")
      ? new AlwaysOffSampler()
      : new TraceIdRatioBasedSampler(ratio);
  return name.startsWith("parentbased_") ? new ParentBasedSampler({ root }) : root;
}

export interface Tracing {
  /** Exports the spans still buffered and stops. */
  shutdown(): Promise<void>;
}

/** Registers a global tracer provider (W3C traceparent propagation, async
 * context) with the given processors, or the OTLP exporter from OTEL_*.
 * SDK 3 has no NodeTracerProvider.register(), so the three globals it used to
 * set are set here; the resource reads OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES through the env detector, and the sampler
 * OTEL_TRACES_SAMPLER (the provider alone no longer reads either). */
export function startTracing(opts: { serviceName?: string; processors?: SpanProcessor[] } = {}): Tracing {
  if (opts.serviceName && !process.env.OTEL_SERVICE_NAME) process.env.OTEL_SERVICE_NAME = opts.serviceName;
  const provider = new TracerProvider({
    sampler: samplerFromEnv(process.env),
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

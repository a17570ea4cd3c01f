// The outermost interceptor: for every RPC, a server span (continuing an
// incoming `traceparent`), the RPC metrics, and one access-log line with
// method, code, duration, tenant, key id and request id — never a secret.
// Streams are measured until their last message.
import { Code, ConnectError, type ContextValues, type Interceptor } from "@connectrpc/connect";
import {
  type Context,
  context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import type { Logger } from "../../shared/log.js";
import { tracer } from "../../shared/tracing.js";
import { type Actor, withActor } from "../model/actor.js";
import { principalKey, requestIdKey } from "../model/request-context.js";
import { ResponseStream, type StreamObserver } from "../streams/response-stream.js";
import { connectCodeName } from "../wire/errors.js";
import type { ServiceMetrics } from "./service-metrics.js";

/** "invalid_argument", as gRPC status names are written in Prometheus and logs; "ok" for success. */
const codeName = (code: Code | undefined): string => (code === undefined ? "ok" : connectCodeName(code));

const headerGetter = {
  keys: (h: Headers) => [...h.keys()],
  get: (h: Headers, key: string) => h.get(key) ?? undefined,
};

type ObserverDeps = { metrics: ServiceMetrics; logger: Logger; level: AccessLevel };

// Any pino level name; "silent" turns access logging off.
type AccessLevel = "trace" | "debug" | "info" | "warn" | "error" | "silent";

/**
 * One RPC being observed: what is recorded once it ends (metrics, span, access-log line), and for
 * a stream, the part of its one wrapper (ResponseStream) that runs each pull in the RPC's actor
 * scope and, when the span is a real one (a tracer is configured or a trace came in), in its
 * span; the observation is itself the scope's actor (no closure per call).
 */
class Observation implements Actor, StreamObserver {
  private finished = false;
  /** The span's context for a stream's pulls, or undefined when it carries no trace (no-op tracer, no parent). */
  private spanContext: Context | undefined;

  constructor(
    private readonly deps: ObserverDeps,
    private readonly service: string,
    private readonly method: string,
    private readonly started: number,
    private readonly span: Span,
    private readonly contextValues: ContextValues,
  ) {}

  /** The key id of the call, read at each write. */
  actorKeyId(): string | undefined {
    return this.contextValues.get(principalKey)?.keyId;
  }

  /** From now on, observes the response stream of the call, whose span context is `spanContext`. */
  observeStream(spanContext: Context): void {
    this.spanContext = isSpanContextValid(this.span.spanContext()) ? spanContext : undefined;
  }

  enter<S, R>(pull: (stream: S) => R, stream: S): R {
    const spanContext = this.spanContext;
    return spanContext === undefined
      ? withActor(this, pull, stream)
      : withActor(this, inSpan<S, R>, spanContext, pull, stream);
  }

  ended(error: unknown): void {
    this.finish(error);
  }

  closedByClient(): void {
    this.finish(new ConnectError("stream closed by the client", Code.Canceled));
  }

  /** Records the RPC's end once: metrics, span, access-log line. */
  finish(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    const { service, method, deps } = this;
    const code = error === undefined ? undefined : ConnectError.from(error).code;
    const seconds = (performance.now() - this.started) / 1000;
    const name = codeName(code);
    deps.metrics.rpcs.inc({ service, method, code: name });
    deps.metrics.rpcSeconds.observe({ service, method }, seconds);
    this.span.setAttribute("rpc.grpc.status_code", code ?? 0);
    if (code !== undefined) this.span.setStatus({ code: SpanStatusCode.ERROR, message: name });
    this.span.end();
    const { logger, level } = deps;
    if (level === "silent" || !logger.isLevelEnabled(level)) return;
    const principal = this.contextValues.get(principalKey);
    logger[level](
      {
        rpc: `${service}/${method}`,
        code: name,
        ms: Math.round(seconds * 1000),
        requestId: this.contextValues.get(requestIdKey) || undefined,
        tenant: principal?.tenantId,
        keyId: principal?.keyId,
      },
      "rpc",
    );
  }
}

function inSpan<S, R>(spanContext: Context, pull: (stream: S) => R, stream: S): R {
  return context.with(spanContext, pull, undefined, stream);
}

// The per-call path below makes no named closures: tsx (bin/agentd.js) compiles with esbuild's
// keepNames, which gives each one an Object.defineProperty of its name, per call.
export function rpcObserver(deps: { metrics: ServiceMetrics; logger: Logger; level: string }): Interceptor {
  const observer: ObserverDeps = {
    metrics: deps.metrics,
    logger: deps.logger.child({ component: "access" }),
    level: deps.level as AccessLevel,
  };
  return (next) => async (req) => {
    const service = req.service.typeName;
    const method = req.method.name;
    const started = performance.now();
    const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
    const span = tracer().startSpan(
      `${service}/${method}`,
      { kind: SpanKind.SERVER, attributes: { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method } },
      parent,
    );
    const spanContext = trace.setSpan(parent, span);
    const o = new Observation(observer, service, method, started, span, req.contextValues);
    try {
      const res = await withActor(o, () => context.with(spanContext, next, undefined, req));
      if (!res.stream) {
        o.finish(undefined);
        return res;
      }
      o.observeStream(spanContext);
      return { ...res, message: ResponseStream.withObserver(res.message, o) } as typeof res;
    } catch (error) {
      o.finish(error);
      throw error;
    }
  };
}

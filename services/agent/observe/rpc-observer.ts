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
import { withActor } from "../model/actor.js";
import { principalKey, requestIdKey } from "../model/request-context.js";
import { connectCodeName } from "../wire/errors.js";
import type { ServiceMetrics } from "./service-metrics.js";

/** "invalid_argument", as gRPC status names are written in Prometheus and logs; "ok" for success. */
const codeName = (code: Code | undefined): string => (code === undefined ? "ok" : connectCodeName(code));

const headerGetter = {
  keys: (h: Headers) => [...h.keys()],
  get: (h: Headers, key: string) => h.get(key) ?? undefined,
};

/** One RPC being observed: what `finish` records once it ends. */
interface Observation {
  service: string;
  method: string;
  started: number;
  span: Span;
  contextValues: ContextValues;
  finished: boolean;
}

type ObserverDeps = { metrics: ServiceMetrics; logger: Logger; level: AccessLevel };

// Any pino level name; "silent" turns access logging off.
type AccessLevel = "trace" | "debug" | "info" | "warn" | "error" | "silent";

/** Records an RPC's end once: metrics, span, access-log line. */
function finish(deps: ObserverDeps, o: Observation, error: unknown): void {
  if (o.finished) return;
  o.finished = true;
  const { service, method } = o;
  const code = error === undefined ? undefined : ConnectError.from(error).code;
  const seconds = (performance.now() - o.started) / 1000;
  const name = codeName(code);
  deps.metrics.rpcs.inc({ service, method, code: name });
  deps.metrics.rpcSeconds.observe({ service, method }, seconds);
  o.span.setAttribute("rpc.grpc.status_code", code ?? 0);
  if (code !== undefined) o.span.setStatus({ code: SpanStatusCode.ERROR, message: name });
  o.span.end();
  const { logger, level } = deps;
  if (level === "silent" || !logger.isLevelEnabled(level)) return;
  const principal = o.contextValues.get(principalKey);
  logger[level](
    {
      rpc: `${service}/${method}`,
      code: name,
      ms: Math.round(seconds * 1000),
      requestId: o.contextValues.get(requestIdKey) || undefined,
      tenant: principal?.tenantId,
      keyId: principal?.keyId,
    },
    "rpc",
  );
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
    const o: Observation = { service, method, started, span, contextValues: req.contextValues, finished: false };
    const values = req.contextValues;
    try {
      const res = await withActor(
        () => values.get(principalKey)?.keyId,
        () => context.with(spanContext, next, undefined, req),
      );
      if (!res.stream) {
        finish(observer, o, undefined);
        return res;
      }
      return { ...res, message: new ObservedStream(observer, o, spanContext, res.message) } as typeof res;
    } catch (error) {
      finish(observer, o, error);
      throw error;
    }
  };
}

/** A response stream measured until its last message; each pull runs in the RPC's actor scope
 * and, when the span is a real one (a tracer is configured or a trace came in), in its span.
 * One plain iterator object per stream: an async `next` kept its frame and two closures per
 * pull alive for as long as the stream was idle. */
class ObservedStream<T> implements AsyncIterableIterator<T> {
  private readonly messages: AsyncIterator<T>;
  /** The span's context, or undefined when it carries no trace (no-op tracer, no parent). */
  private readonly spanContext: Context | undefined;
  /** The key id of the call, read at each write (the actor scope's store). */
  private readonly actor: () => string | undefined;

  constructor(
    private readonly deps: ObserverDeps,
    private readonly o: Observation,
    spanContext: Context,
    stream: AsyncIterable<T>,
  ) {
    this.messages = stream[Symbol.asyncIterator]();
    this.spanContext = isSpanContextValid(o.span.spanContext()) ? spanContext : undefined;
    this.actor = actorOf(o.contextValues);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    let pending: Promise<IteratorResult<T>>;
    try {
      pending = withActor(this.actor, () =>
        this.spanContext === undefined
          ? this.messages.next()
          : context.with(this.spanContext, () => this.messages.next()),
      );
    } catch (error) {
      finish(this.deps, this.o, error);
      return Promise.reject(error);
    }
    return pending.then(
      (r) => {
        if (r.done) finish(this.deps, this.o, undefined);
        return r;
      },
      (error) => {
        finish(this.deps, this.o, error);
        throw error;
      },
    );
  }

  async return(value?: unknown): Promise<IteratorResult<T>> {
    // The client went away before the stream ended.
    finish(this.deps, this.o, new ConnectError("stream closed by the client", Code.Canceled));
    return (await this.messages.return?.(value)) ?? { done: true as const, value: undefined };
  }
}

// A returned arrow, not a named const: no per-stream name property under esbuild's keepNames.
function actorOf(values: ContextValues): () => string | undefined {
  return () => values.get(principalKey)?.keyId;
}

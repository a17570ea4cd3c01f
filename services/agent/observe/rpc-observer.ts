// The outermost interceptor: for every RPC, a server span (continuing an
// incoming `traceparent`), the RPC metrics, and one access-log line with
// method, code, duration, tenant, key id and request id — never a secret.
// Streams are measured until their last message.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
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

export function rpcObserver(deps: { metrics: ServiceMetrics; logger: Logger; level: string }): Interceptor {
  const { metrics } = deps;
  const logger = deps.logger.child({ component: "access" });
  // Any pino level name; "silent" turns access logging off.
  const level = deps.level as "trace" | "debug" | "info" | "warn" | "error" | "silent";
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
    let finished = false;
    const finish = (error: unknown) => {
      if (finished) return;
      finished = true;
      const code = error === undefined ? undefined : ConnectError.from(error).code;
      const seconds = (performance.now() - started) / 1000;
      const name = codeName(code);
      metrics.rpcs.inc({ service, method, code: name });
      metrics.rpcSeconds.observe({ service, method }, seconds);
      span.setAttribute("rpc.grpc.status_code", code ?? 0);
      if (code !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: name });
      span.end();
      if (level === "silent" || !logger.isLevelEnabled(level)) return;
      const principal = req.contextValues.get(principalKey);
      logger[level](
        {
          rpc: `${service}/${method}`,
          code: name,
          ms: Math.round(seconds * 1000),
          requestId: req.contextValues.get(requestIdKey) || undefined,
          tenant: principal?.tenantId,
          keyId: principal?.keyId,
        },
        "rpc",
      );
    };
    try {
      const actor = () => req.contextValues.get(principalKey)?.keyId;
      const res = await withActor(actor, () => context.with(spanContext, () => next(req)));
      if (!res.stream) {
        finish(undefined);
        return res;
      }
      const messages = res.message[Symbol.asyncIterator]();
      return {
        ...res,
        // The handler's generator runs as messages are pulled: each pull runs in the RPC's span.
        message: {
          [Symbol.asyncIterator]() {
            return {
              async next() {
                try {
                  const r = await withActor(actor, () => context.with(spanContext, () => messages.next()));
                  if (r.done) finish(undefined);
                  return r;
                } catch (error) {
                  finish(error);
                  throw error;
                }
              },
              async return(value?: unknown) {
                // The client went away before the stream ended.
                finish(new ConnectError("stream closed by the client", Code.Canceled));
                return (await messages.return?.(value)) ?? { done: true as const, value: undefined };
              },
            };
          },
        },
      } as typeof res;
    } catch (error) {
      finish(error);
      throw error;
    }
  };
}

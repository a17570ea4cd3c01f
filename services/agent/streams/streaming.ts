// Streaming assembled for the agent service: the event hub, stream admission,
// metrics, and the plain-HTTP routes that live beside the RPCs on the one port
// (SSE task events, GET /metrics).
import type { Authenticator } from "../../shared/auth/authenticator.js";
import type { Config } from "../../shared/config.js";
import type { Sql } from "../../shared/db/database.js";
import type { Logger } from "../../shared/log.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import { createEventHub, type EventHub } from "./event-hub.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";
import { createSseHandler } from "./sse.js";
import { createStreamLimits, type StreamLimits } from "./stream-limits.js";
import { createStreamMetrics, type StreamMetrics } from "./stream-metrics.js";

/** What the streaming handlers need. */
export interface StreamingDeps {
  hub: EventHub;
  limits: StreamLimits;
}

export interface Streaming extends StreamingDeps {
  metrics: StreamMetrics;
  /** Serves `GET /v1/tasks/{id}/events` (SSE) and `GET /metrics`; false for any other path. */
  handleHttp(req: NodeRequest, res: NodeResponse): boolean;
  start(): void;
  /** Ends every open stream (UNAVAILABLE: reconnect elsewhere with after_sequence). */
  close(): Promise<void>;
}

export function createStreaming(deps: {
  sql: Sql;
  bus: WakeupBus;
  auth: Authenticator;
  logger: Logger;
  config: Pick<
    Config,
    | "pollMs"
    | "streamKeepAliveMs"
    | "maxStreamsPerConnection"
    | "maxStreamsPerTenant"
    | "streamWindowEvents"
    | "dbStatementTimeoutMs"
  >;
}): Streaming {
  const { config } = deps;
  const metrics = createStreamMetrics();
  const logger = deps.logger.child({ component: "streams" });
  const hub = createEventHub({
    sql: deps.sql,
    bus: deps.bus,
    logger,
    metrics,
    pollMs: config.pollMs,
    keepAliveMs: config.streamKeepAliveMs,
    windowEvents: config.streamWindowEvents,
  });
  const limits = createStreamLimits({
    perConnection: config.maxStreamsPerConnection,
    perTenant: config.maxStreamsPerTenant,
    metrics,
  });
  const sse = createSseHandler({
    sql: deps.sql,
    hub,
    limits,
    auth: deps.auth,
    logger,
    statementTimeoutMs: config.dbStatementTimeoutMs,
  });

  return {
    hub,
    limits,
    metrics,
    handleHttp(req, res) {
      if (sse(req, res)) return true;
      if (req.method === "GET" && (req.url ?? "").split("?", 1)[0] === "/metrics") {
        // Aggregate counts only (no tenant or task ids), like the health service: open.
        metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { "content-type": metrics.registry.contentType });
            res.end(text);
          },
          () => {
            res.writeHead(500);
            res.end();
          },
        );
        return true;
      }
      return false;
    },
    start: () => hub.start(),
    close: () => hub.close(),
  };
}

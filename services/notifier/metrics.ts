// Notifier metrics (prom-client), in their own registry so tests and `agentd
// dev` can run several notifiers in one process. Exposed on an optional HTTP
// listener (`AGENTD_NOTIFIER_METRICS_PORT`, 0 = off) at GET /metrics.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export interface NotifierMetrics {
  registry: Registry;
  /** Attempts by outcome: success, http, timeout, network, refused, lost. */
  attempts: Counter<"outcome">;
  /** Deliveries that reached a final state: succeeded, failed (dead letter). */
  deliveries: Counter<"outcome">;
  /** Time of one attempt, from request start to answer (or failure). */
  attemptSeconds: Histogram<"outcome">;
  /** From the delivery's creation (its event's commit) to a 2xx receipt. */
  deliveryLagSeconds: Histogram;
  endpointsDisabled: Counter<"reason">;
  inFlight: Gauge;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30];
const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 21600, 86400];

export function createNotifierMetrics(registry = new Registry()): NotifierMetrics {
  const registers = [registry];
  return {
    registry,
    attempts: new Counter({
      name: "agentd_webhook_attempts_total",
      help: "Webhook delivery attempts by outcome (success, http, timeout, network, refused, lost).",
      labelNames: ["outcome"],
      registers,
    }),
    deliveries: new Counter({
      name: "agentd_webhook_deliveries_total",
      help: "Webhook deliveries that reached a final state, by outcome (succeeded, failed).",
      labelNames: ["outcome"],
      registers,
    }),
    attemptSeconds: new Histogram({
      name: "agentd_webhook_attempt_duration_seconds",
      help: "Duration of one delivery attempt, by outcome.",
      labelNames: ["outcome"],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    deliveryLagSeconds: new Histogram({
      name: "agentd_webhook_delivery_lag_seconds",
      help: "From the commit of the task event to the receiver's 2xx, retries included.",
      buckets: LAG_BUCKETS,
      registers,
    }),
    endpointsDisabled: new Counter({
      name: "agentd_webhook_endpoints_disabled_total",
      help: "Endpoints the notifier disabled (410 Gone, failing for too long).",
      labelNames: ["reason"],
      registers,
    }),
    inFlight: new Gauge({
      name: "agentd_webhook_in_flight",
      help: "Delivery attempts in flight in this process.",
      registers,
    }),
  };
}

/** GET /metrics on host:port. Resolves once listening. */
export async function serveMetrics(
  registry: Registry,
  opts: { host: string; port: number },
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || req.url?.split("?")[0] !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

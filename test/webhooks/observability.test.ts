// What operators see: delivery counts by outcome and latency histograms on
// GET /metrics, and one structured log line per attempt.
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryState } from "../../gen/agentd/v1/webhook_service_pb.js";
import { serveMetrics } from "../../services/notifier/metrics.js";
import { createNotifier, type Notifier } from "../../services/notifier/notifier.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, startWebhookHarness, type WebhookHarness } from "./support.js";

let h: WebhookHarness;
let notifier: Notifier;
let ok: Receiver;
let broken: Receiver;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  h = await startWebhookHarness({ notifier: false });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  notifier = createNotifier({
    db: h.agentd.db,
    bus: h.agentd.bus,
    config: { ...h.config, webhookRetryScheduleMs: [] },
    logger: pino({ level: "info" }, sink),
  });
  notifier.start();
  ok = await startReceiver();
  broken = await startReceiver(() => ({ status: 500 }));
});
afterAll(async () => {
  await notifier?.stop(200);
  await h?.close();
  await ok?.close();
  await broken?.close();
});

describe("observability", () => {
  it("counts deliveries by outcome, times attempts, logs each attempt with its delivery, endpoint, task and attempt", async () => {
    const client = h.agentd.client;
    const { endpoint } = await client.webhooks.createWebhookEndpoint({ url: ok.url, eventTypes: ["task.succeeded"] });
    await client.webhooks.createWebhookEndpoint({ url: broken.url, eventTypes: ["task.succeeded"] });
    const { task } = await client.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) });
    await until(
      () => client.webhooks.listWebhookDeliveries({ taskId: task!.id }),
      (r) =>
        r.deliveries.length === 2 &&
        r.deliveries.every((d) => d.state === DeliveryState.SUCCEEDED || d.state === DeliveryState.FAILED),
    );

    const text = await notifier.metrics.registry.metrics();
    expect(text).toMatch(/agentd_webhook_deliveries_total\{outcome="succeeded"\} 1/);
    expect(text).toMatch(/agentd_webhook_deliveries_total\{outcome="failed"\} 1/);
    expect(text).toMatch(/agentd_webhook_attempts_total\{outcome="success"\} 1/);
    expect(text).toMatch(/agentd_webhook_attempts_total\{outcome="http"\} 1/);
    expect(text).toMatch(/agentd_webhook_attempt_duration_seconds_count\{outcome="success"\} 1/);
    expect(text).toMatch(/agentd_webhook_delivery_lag_seconds_count 1/);

    const delivered = lines.find((l) => l.msg === "webhook delivered")!;
    expect(delivered).toMatchObject({
      endpointId: endpoint!.id,
      taskId: task!.id,
      attempt: 1,
      status: 200,
      outcome: "success",
      tenantId: "t1",
    });
    expect(delivered.deliveryId).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof delivered.latencyMs).toBe("number");
    // The origin, not the URL: paths and queries may carry receivers' tokens.
    expect(delivered.target).toBe(new URL(ok.url).origin);
    expect(JSON.stringify(lines)).not.toContain("/hook");
    const dead = lines.find((l) => String(l.msg).includes("dead letter"))!;
    expect(dead).toMatchObject({
      taskId: task!.id,
      status: 500,
      outcome: "http",
      error: "answered 500 Internal Server Error",
    });
  });

  it("serves the registry on GET /metrics", async () => {
    const server = await serveMetrics(notifier.metrics.registry, { host: "127.0.0.1", port: 0 });
    try {
      const res = await fetch(server.url);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("agentd_webhook_attempts_total");
      expect((await fetch(server.url.replace("/metrics", "/other"))).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

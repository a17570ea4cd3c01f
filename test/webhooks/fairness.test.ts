// One slow receiver cannot starve the others: a destination gets at most its
// share of the notifier's slots, and new deliveries are picked up at once
// through the wake-up bus rather than the poll.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryState, type WebhookDelivery } from "../../gen/agentd/v1/webhook_service_pb.js";
import type { Clients } from "../support/agentd.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, startWebhookHarness, type WebhookHarness } from "./support.js";

let h: WebhookHarness;
const receivers: Receiver[] = [];

beforeAll(async () => {
  h = await startWebhookHarness({
    notifierConfig: {
      webhookConcurrency: 8,
      webhookEndpointConcurrency: 2,
      webhookTimeoutMs: 3000,
      notifierLeaseMs: 5000,
      // Only a wake-up can explain a pickup within milliseconds.
      pollMs: 2000,
    },
  });
});
afterAll(async () => {
  await h?.close();
  await Promise.all(receivers.map((r) => r.close()));
});

async function tenant(name: string): Promise<Clients> {
  const client = h.agentd.clients(await h.agentd.createKey(name));
  await client.webhooks.rotateWebhookSecret({});
  return client;
}

const millis = (t: { seconds: bigint; nanos: number } | undefined) => Number(t!.seconds) * 1000 + t!.nanos / 1e6;
const pickupMs = (d: WebhookDelivery) => millis(d.attempts[0]!.time) - millis(d.createTime);

describe("fairness", () => {
  it("a slow endpoint holds at most its per-endpoint share, and a fast one is served meanwhile", async () => {
    let slowInFlight = 0;
    let slowPeak = 0;
    const slow = await startReceiver(() => {
      slowPeak = Math.max(slowPeak, ++slowInFlight);
      setTimeout(() => slowInFlight--, 2500);
      return { status: 200, delayMs: 2500 };
    });
    const fast = await startReceiver();
    receivers.push(slow, fast);

    const slowTenant = await tenant("slow");
    await slowTenant.webhooks.createWebhookEndpoint({ url: slow.url, eventTypes: ["task.succeeded"] });
    for (let i = 0; i < 12; i++) await slowTenant.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) });
    await slow.until((r) => r.length >= 2);

    const fastTenant = await tenant("fast");
    const started = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const { task } = await fastTenant.tasks.createTask({
        agent: "simulate",
        input: value({ steps: 0 }),
        webhook: { url: fast.url, eventTypes: ["task.succeeded"] },
      });
      ids.push(task!.id);
    }
    await fast.until((r) => r.length >= 10, 5000);
    // All ten arrived while the slow receiver was still sitting on its first two.
    expect(Date.now() - started).toBeLessThan(2000);
    expect(slowPeak).toBeLessThanOrEqual(2);
    expect(slow.received.length).toBeLessThanOrEqual(4);
  });

  it("new deliveries are picked up within milliseconds through the wake-up bus, not the 2 s poll", async () => {
    const r = await startReceiver();
    receivers.push(r);
    const client = await tenant("wakeup");
    const deliveries: WebhookDelivery[] = [];
    for (let i = 0; i < 5; i++) {
      const { task } = await client.tasks.createTask({
        agent: "simulate",
        input: value({ steps: 0 }),
        webhook: { url: r.url, eventTypes: ["task.succeeded"] },
      });
      const [d] = (
        await until(
          () => client.webhooks.listWebhookDeliveries({ taskId: task!.id }),
          (x) => x.deliveries[0]?.state === DeliveryState.SUCCEEDED,
        )
      ).deliveries;
      deliveries.push(d!);
    }
    for (const d of deliveries) expect(pickupMs(d)).toBeLessThan(500);
  });
});

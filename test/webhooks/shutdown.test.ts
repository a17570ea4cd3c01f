// A notifier stopping gracefully lets attempts in flight finish within the
// grace period and hands the rest back, so another notifier sends them at once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryState } from "../../gen/agentd/v1/webhook_service_pb.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, startWebhookHarness, type WebhookHarness } from "./support.js";

let h: WebhookHarness;
let receiver: Receiver;

beforeAll(async () => {
  h = await startWebhookHarness({
    notifier: false,
    notifierConfig: { webhookTimeoutMs: 5000, notifierLeaseMs: 30_000 },
  });
  receiver = await startReceiver(({ index }) => (index === 0 ? { status: 200, delayMs: 4000 } : { status: 200 }));
  await h.agentd.client.webhooks.rotateWebhookSecret({});
});
afterAll(async () => {
  await h?.close();
  await receiver?.close();
});

describe("stop(graceMs)", () => {
  it("hands back an attempt still in flight after the grace period: it is sent again at once, same webhook-id, not counted", async () => {
    const first = h.startNotifier();
    const { task } = await h.agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 0 }),
      webhook: { url: receiver.url, eventTypes: ["task.succeeded"] },
    });
    await receiver.until((r) => r.length === 1);
    const stopped = Date.now();
    await first.stop(200);
    expect(Date.now() - stopped).toBeLessThan(2000);
    const [handedBack] = (await h.agentd.client.webhooks.listWebhookDeliveries({ taskId: task!.id })).deliveries;
    expect(handedBack).toMatchObject({ state: DeliveryState.PENDING, attempts: [] });

    h.startNotifier();
    const [delivered] = (
      await until(
        () => h.agentd.client.webhooks.listWebhookDeliveries({ taskId: task!.id }),
        (r) => r.deliveries[0]?.state === DeliveryState.SUCCEEDED,
      )
    ).deliveries;
    // The lease (30 s) did not have to run out: the second notifier sent it right away.
    expect(Date.now() - stopped).toBeLessThan(5000);
    expect(delivered!.attempts.map((a) => [a.attempt, a.statusCode])).toEqual([[1, 200]]);
    expect(receiver.received.map((r) => r.headers["webhook-id"])).toEqual([delivered!.id, delivered!.id]);
  });
});

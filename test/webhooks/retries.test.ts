// What the notifier does when a receiver does not answer 2xx: the retry
// schedule, throttling minimums, Retry-After, 410 Gone, redirects, dead
// letters and their manual retry, and endpoints that fail for too long.
import { Code } from "@connectrpc/connect";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeliveryState, type WebhookDelivery } from "../../gen/agentd/v1/webhook_service_pb.js";
import type { Notifier } from "../../services/notifier/notifier.js";
import type { Config } from "../../services/shared/config.js";
import type { Clients } from "../support/agentd.js";
import { errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, type Reply, startReceiver, startWebhookHarness, type WebhookHarness } from "./support.js";

let h: WebhookHarness;
let notifier: Notifier | undefined;
const receivers: Receiver[] = [];
let tenants = 0;

beforeAll(async () => {
  h = await startWebhookHarness({ notifier: false });
});
afterEach(async () => {
  await notifier?.stop(200);
  notifier = undefined;
});
afterAll(async () => {
  await h?.close();
  await Promise.all(receivers.map((r) => r.close()));
});

/** A fresh tenant with one endpoint for task.succeeded at a receiver answering `reply`, and a notifier with `config`. */
async function setup(reply: (r: { index: number }) => Reply, config: Partial<Config> = {}) {
  const receiver = await startReceiver(reply);
  receivers.push(receiver);
  const client: Clients = h.agentd.clients(await h.agentd.createKey(`retries-${++tenants}`));
  const { endpoint, signingSecret } = await client.webhooks.createWebhookEndpoint({
    url: receiver.url,
    eventTypes: ["task.succeeded"],
  });
  notifier = h.startNotifier(config);
  const finishTask = async () => {
    const { task } = await client.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) });
    await client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 10n } });
    return task!.id;
  };
  const deliveries = (taskId: string) => client.webhooks.listWebhookDeliveries({ taskId }).then((r) => r.deliveries);
  const settled = (taskId: string, state: DeliveryState, attempts: number, ms = 10_000) =>
    until(
      () => deliveries(taskId),
      (d) => d.length === 1 && d[0]!.state === state && d[0]!.attempts.length === attempts,
      ms,
    ).then((d) => d[0]!);
  return { receiver, client, endpointId: endpoint!.id, secret: signingSecret, finishTask, deliveries, settled };
}

const ms = (d: WebhookDelivery, i: number) => {
  const t = d.attempts[i]!.time!;
  return Number(t.seconds) * 1000 + t.nanos / 1e6;
};

describe("retries", () => {
  it("500 then 200: retried with the same webhook-id, a new timestamp and signature; both attempts logged", async () => {
    // A first retry after ~1.1 s, so the second attempt's timestamp (whole seconds) differs.
    const s = await setup(({ index }) => (index === 0 ? { status: 500, body: "oops" } : { status: 200 }), {
      webhookRetryScheduleMs: [1400, 100],
    });
    const taskId = await s.finishTask();
    const delivery = await s.settled(taskId, DeliveryState.SUCCEEDED, 2);
    const [first, second] = s.receiver.received;
    expect(first!.headers["webhook-id"]).toBe(delivery.id);
    expect(second!.headers["webhook-id"]).toBe(delivery.id);
    expect(second!.headers["webhook-timestamp"]).not.toBe(first!.headers["webhook-timestamp"]);
    expect(second!.headers["webhook-signature"]).not.toBe(first!.headers["webhook-signature"]);
    const wh = new Webhook(s.secret);
    // Each attempt verifies on its own (the library checks the timestamp is recent).
    expect(() => wh.verify(first!.body, first!.headers as Record<string, string>)).not.toThrow();
    expect(() => wh.verify(second!.body, second!.headers as Record<string, string>)).not.toThrow();
    expect(second!.body).toBe(first!.body);
    expect(delivery.attempts.map((a) => [a.attempt, a.statusCode])).toEqual([
      [1, 500],
      [2, 200],
    ]);
    expect(delivery.attempts[0]).toMatchObject({ error: "answered 500 Internal Server Error", responseBody: "oops" });
    expect(ms(delivery, 1) - ms(delivery, 0)).toBeGreaterThanOrEqual(1400 * 0.8);
  });

  it("a timeout counts as a failed attempt and waits at least the throttle minimum", async () => {
    const s = await setup(({ index }) => (index === 0 ? { status: 200, delayMs: 1500 } : { status: 200 }), {
      webhookTimeoutMs: 300,
      webhookRetryScheduleMs: [10],
      webhookThrottleMinMs: 700,
    });
    const taskId = await s.finishTask();
    const delivery = await s.settled(taskId, DeliveryState.SUCCEEDED, 2);
    expect(delivery.attempts[0]!.statusCode).toBe(0);
    expect(delivery.attempts[0]!.error).toMatch(/^timeout/);
    expect(
      Number(delivery.attempts[0]!.latency!.nanos) / 1e6 + Number(delivery.attempts[0]!.latency!.seconds) * 1000,
    ).toBeGreaterThanOrEqual(290);
    // Attempt 2 started at least timeout + throttle minimum after attempt 1 did.
    expect(ms(delivery, 1) - ms(delivery, 0)).toBeGreaterThanOrEqual(300 + 700 - 20);
  });

  it("429 with Retry-After: the next attempt waits what the receiver asked", async () => {
    const s = await setup(
      ({ index }) => (index === 0 ? { status: 429, headers: { "retry-after": "2" } } : { status: 200 }),
      {
        webhookRetryScheduleMs: [10],
        webhookThrottleMinMs: 100,
      },
    );
    const taskId = await s.finishTask();
    const delivery = await s.settled(taskId, DeliveryState.SUCCEEDED, 2);
    expect(delivery.attempts[0]!.statusCode).toBe(429);
    expect(ms(delivery, 1) - ms(delivery, 0)).toBeGreaterThanOrEqual(2000 - 20);
  });

  it("a Retry-After beyond the bound is cut to it", async () => {
    const s = await setup(
      ({ index }) => (index === 0 ? { status: 503, headers: { "retry-after": "86400" } } : { status: 200 }),
      {
        webhookRetryScheduleMs: [10],
        webhookThrottleMinMs: 100,
        webhookRetryAfterMaxMs: 600,
      },
    );
    const taskId = await s.finishTask();
    const delivery = await s.settled(taskId, DeliveryState.SUCCEEDED, 2);
    const gap = ms(delivery, 1) - ms(delivery, 0);
    expect(gap).toBeGreaterThanOrEqual(580);
    expect(gap).toBeLessThan(3000);
  });

  it("410 Gone disables the endpoint: the delivery fails at once and later events are not enqueued", async () => {
    const s = await setup(() => ({ status: 410 }));
    const taskId = await s.finishTask();
    const delivery = await s.settled(taskId, DeliveryState.FAILED, 1);
    expect(delivery.attempts[0]!.statusCode).toBe(410);
    const { endpoints } = await s.client.webhooks.listWebhookEndpoints({});
    expect(endpoints[0]).toMatchObject({ enabled: false, disabledReason: "answered 410 Gone" });

    const later = await s.finishTask();
    await new Promise((r) => setTimeout(r, 300));
    expect(await s.deliveries(later)).toEqual([]);
    expect(s.receiver.received).toHaveLength(1);

    const err = await expectCode(
      s.client.webhooks.retryWebhookDelivery({ deliveryId: delivery.id }),
      Code.FailedPrecondition,
    );
    expect(errorInfo(err)?.reason).toBe("ENDPOINT_DISABLED");
    const { endpoint } = await s.client.webhooks.updateWebhookEndpoint({
      endpoint: { id: s.endpointId, enabled: true },
      updateMask: { paths: ["enabled"] },
    });
    expect(endpoint).toMatchObject({ enabled: true, disabledReason: "" });
  });

  it("a redirect is not followed: the attempt fails with the 3xx and the target gets nothing", async () => {
    const target = await startReceiver();
    receivers.push(target);
    const s = await setup(() => ({ status: 302, headers: { location: target.url } }), { webhookRetryScheduleMs: [] });
    const taskId = await s.finishTask();
    const delivery = await s.settled(taskId, DeliveryState.FAILED, 1);
    expect(delivery.attempts[0]!.statusCode).toBe(302);
    expect(delivery.attempts[0]!.error).toContain("not followed");
    expect(target.received).toHaveLength(0);
  });

  it("when every attempt fails the delivery is a dead letter; RetryWebhookDelivery then delivers it with the same id", async () => {
    let healthy = false;
    const s = await setup(() => (healthy ? { status: 204 } : { status: 500 }), {
      webhookRetryScheduleMs: [20, 20, 20],
    });
    const taskId = await s.finishTask();
    const dead = await s.settled(taskId, DeliveryState.FAILED, 4);
    expect(dead.attempts.map((a) => a.statusCode)).toEqual([500, 500, 500, 500]);
    const failedOnly = await s.client.webhooks.listWebhookDeliveries({ states: [DeliveryState.FAILED] });
    expect(failedOnly.deliveries.map((d) => d.id)).toEqual([dead.id]);

    healthy = true;
    const { delivery } = await s.client.webhooks.retryWebhookDelivery({ deliveryId: dead.id });
    expect(
      delivery?.state === DeliveryState.PENDING ||
        delivery?.state === DeliveryState.SENDING ||
        delivery?.state === DeliveryState.SUCCEEDED,
    ).toBe(true);
    const redelivered = await s.settled(taskId, DeliveryState.SUCCEEDED, 5);
    expect(redelivered.id).toBe(dead.id);
    expect(redelivered.attempts.at(-1)).toMatchObject({ attempt: 5, statusCode: 204 });
    expect(s.receiver.received.at(-1)!.headers["webhook-id"]).toBe(dead.id);

    await expectCode(
      s.client.webhooks.retryWebhookDelivery({ deliveryId: "0190a3c4-0000-7000-8000-000000000000" }),
      Code.NotFound,
    );
    await expectCode(s.client.webhooks.retryWebhookDelivery({ deliveryId: "" }), Code.InvalidArgument);
  });

  it("a manual retry of a dead letter is one attempt: if it fails, it is a dead letter again", async () => {
    const s = await setup(() => ({ status: 500 }), { webhookRetryScheduleMs: [] });
    const taskId = await s.finishTask();
    const dead = await s.settled(taskId, DeliveryState.FAILED, 1);
    await s.client.webhooks.retryWebhookDelivery({ deliveryId: dead.id });
    await s.settled(taskId, DeliveryState.FAILED, 2);
  });

  it("an endpoint that only failed for the configured time (5 days by default) is disabled", async () => {
    const s = await setup(() => ({ status: 500 }), {
      webhookRetryScheduleMs: [250, 250, 250, 250, 250, 250, 250],
      webhookDisableAfterMs: 1000,
    });
    const taskId = await s.finishTask();
    const [delivery] = await until(
      () => s.deliveries(taskId),
      (d) => d[0]?.state === DeliveryState.FAILED,
    );
    const { endpoints } = await s.client.webhooks.listWebhookEndpoints({});
    expect(endpoints[0]!.enabled).toBe(false);
    expect(endpoints[0]!.disabledReason).toMatch(/^every attempt failed since \d{4}-/);
    // Disabled after ~1 s of failures: well before the schedule ran out.
    expect(delivery!.attempts.length).toBeLessThan(8);
    expect(ms(delivery!, delivery!.attempts.length - 1) - ms(delivery!, 0)).toBeGreaterThanOrEqual(1000);
  });
});

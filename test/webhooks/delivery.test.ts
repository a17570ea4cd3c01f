// Pattern 3 end to end: a task's events reach real receivers on loopback,
// signed per Standard Webhooks, with the task exactly as GetTask shows it.
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSchema, TaskState } from "../../gen/agentd/v1/task_pb.js";
import { DeliveryState } from "../../gen/agentd/v1/webhook_service_pb.js";
import { errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, startWebhookHarness, type WebhookHarness } from "./support.js";

let h: WebhookHarness;
let receiver: Receiver;
let tenantSecret: string;

beforeAll(async () => {
  h = await startWebhookHarness();
  receiver = await startReceiver(() => ({ status: 200, body: "thanks" }));
  tenantSecret = (await h.agentd.client.webhooks.rotateWebhookSecret({})).signingSecret;
});
afterAll(async () => {
  await h?.close();
  await receiver?.close();
});

interface Body {
  type: string;
  timestamp: string;
  data: { task: JsonObject; sequence: number };
}

function verified(secret: string, r: { headers: Record<string, unknown>; body: string }): Body {
  return new Webhook(secret).verify(r.body, r.headers as Record<string, string>) as Body;
}

describe("a per-task webhook", () => {
  it("delivers the subscribed events, signed with the tenant secret, with the task as GetTask returns it", async () => {
    const { task } = await h.agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 1, output: { answer: 42 } }),
      webhook: { url: `${receiver.url}?task=1`, eventTypes: ["task.running", "task.succeeded"] },
    });
    const done = await h.agentd.client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 10n } });
    expect(done.task?.state).toBe(TaskState.SUCCEEDED);
    const got = await receiver.until((r) => r.filter((x) => x.body.includes(task!.id)).length >= 2);
    const mine = got.filter((x) => x.body.includes(task!.id)).map((r) => ({ r, body: verified(tenantSecret, r) }));
    expect(mine.map((m) => m.body.type).sort()).toEqual(["task.running", "task.succeeded"]);

    const succeeded = mine.find((m) => m.body.type === "task.succeeded")!;
    expect(fromJson(TaskSchema, succeeded.body.data.task)).toEqual(done.task);
    expect(succeeded.body.data.sequence).toBe(Number(done.task!.lastSequence));
    expect(Number.isNaN(Date.parse(succeeded.body.timestamp))).toBe(false);
    expect(succeeded.r.headers["content-type"]).toBe("application/json");
    expect(succeeded.r.headers["webhook-id"]).toMatch(/^[0-9a-f-]{36}$/);
    // Receivers order by data.sequence: running came before succeeded.
    const running = mine.find((m) => m.body.type === "task.running")!;
    expect(running.body.data.sequence).toBeLessThan(succeeded.body.data.sequence);

    const { deliveries } = await until(
      () => h.agentd.client.webhooks.listWebhookDeliveries({ taskId: task!.id }),
      (r) => r.deliveries.length === 2 && r.deliveries.every((d) => d.state === DeliveryState.SUCCEEDED),
    );
    for (const d of deliveries) {
      expect(d.endpointId).toBe("");
      expect(d.url).toBe(`${receiver.url}?task=1`);
      expect(d.attempts).toHaveLength(1);
      expect(d.attempts[0]).toMatchObject({ attempt: 1, statusCode: 200, error: "", responseBody: "thanks" });
    }
    expect(new Set(deliveries.map((d) => d.id))).toEqual(new Set(mine.map((m) => m.r.headers["webhook-id"])));
  });

  it("is refused with FAILED_PRECONDITION while the tenant has no signing secret", async () => {
    const key = await h.agentd.createKey("no-secret-tenant");
    const client = h.agentd.clients(key);
    const err = await expectCode(
      client.tasks.createTask({
        agent: "simulate",
        input: value({}),
        webhook: { url: receiver.url, eventTypes: ["task.succeeded"] },
      }),
      Code.FailedPrecondition,
    );
    expect(errorInfo(err)?.reason).toBe("NO_SIGNING_SECRET");
    await client.webhooks.rotateWebhookSecret({});
    await client.tasks.createTask({
      agent: "simulate",
      input: value({}),
      webhook: { url: receiver.url, eventTypes: ["task.succeeded"] },
    });
  });

  it("rejects unknown event types and bad URLs as INVALID_ARGUMENT", async () => {
    await expectCode(
      h.agentd.client.tasks.createTask({
        agent: "simulate",
        input: value({}),
        webhook: { url: receiver.url, eventTypes: ["task.exploded"] },
      }),
      Code.InvalidArgument,
    );
    await expectCode(
      h.agentd.client.tasks.createTask({
        agent: "simulate",
        input: value({}),
        webhook: { url: "ftp://example.com/", eventTypes: ["task.failed"] },
      }),
      Code.InvalidArgument,
    );
  });
});

describe("a tenant endpoint", () => {
  it("receives every subscribed event of the tenant's tasks, signed with its own secret, and nothing else", async () => {
    const created = await h.agentd.client.webhooks.createWebhookEndpoint({
      url: `${receiver.url}/endpoint`,
      eventTypes: ["task.failed", "task.progress"],
      description: "failures and progress",
    });
    expect(created.signingSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const endpointId = created.endpoint!.id;

    const { task } = await h.agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 2, fail_at_step: 2, fail_message: "boom" }),
      maxAttempts: 1,
    });
    const done = await h.agentd.client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 10n } });
    expect(done.task?.state).toBe(TaskState.FAILED);

    const forEndpoint = (r: { body: string; headers: Record<string, unknown> }[]) =>
      r.filter((x) => x.body.includes(task!.id) && x.headers["webhook-signature"] !== undefined);
    await receiver.until((r) => forEndpoint(r).some((x) => x.body.includes('"task.failed"')));
    // Deliveries are not ordered: the progress one may still be on its way once task.failed is in.
    const listed = await h.agentd.client.webhooks.listWebhookDeliveries({ endpointId });
    const got = await receiver.until((r) => forEndpoint(r).length >= listed.deliveries.length);
    const bodies = forEndpoint(got).map((r) => verified(created.signingSecret, r));
    expect(bodies.map((b) => b.type)).toContain("task.failed");
    expect(bodies.every((b) => b.type === "task.failed" || b.type === "task.progress")).toBe(true);
    const failed = bodies.find((b) => b.type === "task.failed")!;
    expect(fromJson(TaskSchema, failed.data.task)).toEqual(done.task);

    expect(listed.deliveries.length).toBe(bodies.length);
    expect(listed.deliveries.every((d) => d.endpointId === endpointId)).toBe(true);
    await h.agentd.client.webhooks.deleteWebhookEndpoint({ endpointId });
  });

  it("does not receive another tenant's events", async () => {
    const other = h.agentd.clients(await h.agentd.createKey("other-tenant"));
    const ep = await h.agentd.client.webhooks.createWebhookEndpoint({
      url: `${receiver.url}/t1-only`,
      eventTypes: ["task.succeeded"],
    });
    const { task } = await other.tasks.createTask({ agent: "simulate", input: value({}) });
    await other.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 10n } });
    // Give a delivery time to (wrongly) arrive.
    await new Promise((r) => setTimeout(r, 500));
    expect(receiver.received.some((r) => r.body.includes(task!.id))).toBe(false);
    await expectCode(other.webhooks.listWebhookDeliveries({ endpointId: ep.endpoint!.id }), Code.NotFound);
    await h.agentd.client.webhooks.deleteWebhookEndpoint({ endpointId: ep.endpoint!.id });
  });
});

// WebhookService: endpoints (create, list, update, delete), secrets and their
// rotation, delivery listing — each valid call next to the invalid ones.
import { Code } from "@connectrpc/connect";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryState } from "../../gen/agentd/v1/webhook_service_pb.js";
import type { Clients } from "../support/agentd.js";
import { badRequest, errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, startWebhookHarness, type WebhookHarness } from "./support.js";

let h: WebhookHarness;
let receiver: Receiver;
let tenants = 0;

beforeAll(async () => {
  // No notifier unless a test starts one: deliveries stay PENDING where the test wants to see them.
  h = await startWebhookHarness({ notifier: false });
  receiver = await startReceiver();
});
afterAll(async () => {
  await h?.close();
  await receiver?.close();
});

async function tenant(): Promise<Clients> {
  return h.agentd.clients(await h.agentd.createKey(`endpoints-${++tenants}`));
}

async function finishTask(client: Clients): Promise<string> {
  const { task } = await client.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) });
  await client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 10n } });
  return task!.id;
}

describe("CreateWebhookEndpoint and ListWebhookEndpoints", () => {
  it("creates an endpoint, shows its secret once, and lists it (oldest first) without it", async () => {
    const client = await tenant();
    const created = await client.webhooks.createWebhookEndpoint({
      url: receiver.url,
      eventTypes: ["task.succeeded", "task.failed", "task.succeeded"],
      description: "results",
    });
    expect(created.signingSecret).toMatch(/^whsec_/);
    expect(created.endpoint).toMatchObject({
      url: receiver.url,
      eventTypes: ["task.succeeded", "task.failed"],
      description: "results",
      enabled: true,
      disabledReason: "",
    });
    const second = await client.webhooks.createWebhookEndpoint({
      url: `${receiver.url}/2`,
      eventTypes: ["task.running"],
    });
    const { endpoints } = await client.webhooks.listWebhookEndpoints({});
    expect(endpoints.map((e) => e.id)).toEqual([created.endpoint!.id, second.endpoint!.id]);
    expect(JSON.stringify(endpoints, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain("whsec_");
  });

  it("reports every invalid field at once", async () => {
    const client = await tenant();
    const err = await expectCode(
      client.webhooks.createWebhookEndpoint({ url: "", eventTypes: ["task.exploded"], description: "x".repeat(501) }),
      Code.InvalidArgument,
    );
    expect(
      badRequest(err)
        ?.fieldViolations.map((v) => v.field)
        .sort(),
    ).toEqual(["description", "event_types[0]", "url"]);
    const none = await expectCode(
      client.webhooks.createWebhookEndpoint({ url: receiver.url, eventTypes: [] }),
      Code.InvalidArgument,
    );
    expect(badRequest(none)?.fieldViolations.map((v) => v.field)).toEqual(["event_types"]);
    for (const url of ["not a url", "ftp://example.com/x", "https://user:pw@example.com/", "mailto:a@b.c"]) {
      await expectCode(
        client.webhooks.createWebhookEndpoint({ url, eventTypes: ["task.failed"] }),
        Code.InvalidArgument,
      );
    }
  });

  it("pages with page_size and page_token", async () => {
    const client = await tenant();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(
        (await client.webhooks.createWebhookEndpoint({ url: `${receiver.url}/${i}`, eventTypes: ["task.failed"] }))
          .endpoint!.id,
      );
    }
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await client.webhooks.listWebhookEndpoints({ pageSize: 2, pageToken });
      expect(page.endpoints.length).toBeLessThanOrEqual(2);
      seen.push(...page.endpoints.map((e) => e.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(ids);
    await expectCode(client.webhooks.listWebhookEndpoints({ pageToken: "garbage" }), Code.InvalidArgument);
    await expectCode(client.webhooks.listWebhookEndpoints({ pageSize: -1 }), Code.InvalidArgument);
  });

  it("refuses a tenant's 101st endpoint with RESOURCE_EXHAUSTED, and allows one again after a delete", async () => {
    const client = await tenant();
    const first = await client.webhooks.createWebhookEndpoint({ url: receiver.url, eventTypes: ["task.succeeded"] });
    const tenantId = `endpoints-${tenants}`;
    await h.agentd.db.sql`
      INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, target, event_types, description)
      SELECT ${tenantId}, gen_random_uuid(), ${receiver.url}, 'http://127.0.0.1:1', ARRAY['task.succeeded'], '' FROM generate_series(1, 99)
    `;
    const err = await expectCode(
      client.webhooks.createWebhookEndpoint({ url: receiver.url, eventTypes: ["task.succeeded"] }),
      Code.ResourceExhausted,
    );
    expect(errorInfo(err)?.reason).toBe("TOO_MANY_ENDPOINTS");
    expect(err.rawMessage).toBe("a tenant may have at most 100 webhook endpoints");
    await client.webhooks.deleteWebhookEndpoint({ endpointId: first.endpoint!.id });
    await client.webhooks.createWebhookEndpoint({ url: receiver.url, eventTypes: ["task.succeeded"] });
  });

  it("needs the webhooks:manage scope", async () => {
    const client = h.agentd.clients(await h.agentd.createKey("endpoints-readonly", ["tasks:read"]));
    await expectCode(client.webhooks.listWebhookEndpoints({}), Code.PermissionDenied);
  });
});

describe("UpdateWebhookEndpoint and DeleteWebhookEndpoint", () => {
  it("changes only the fields in the mask; an empty mask replaces all of them", async () => {
    const client = await tenant();
    const { endpoint } = await client.webhooks.createWebhookEndpoint({
      url: receiver.url,
      eventTypes: ["task.failed"],
      description: "a",
    });
    const id = endpoint!.id;
    const updated = await client.webhooks.updateWebhookEndpoint({
      endpoint: { id, description: "b", eventTypes: ["task.running"] },
      updateMask: { paths: ["description"] },
    });
    expect(updated.endpoint).toMatchObject({ description: "b", eventTypes: ["task.failed"], enabled: true });
    const replaced = await client.webhooks.updateWebhookEndpoint({
      endpoint: { id, url: `${receiver.url}/new`, eventTypes: ["task.canceled"], description: "", enabled: true },
    });
    expect(replaced.endpoint).toMatchObject({
      url: `${receiver.url}/new`,
      eventTypes: ["task.canceled"],
      description: "",
    });

    await expectCode(
      client.webhooks.updateWebhookEndpoint({ endpoint: { id }, updateMask: { paths: ["secret"] } }),
      Code.InvalidArgument,
    );
    await expectCode(
      client.webhooks.updateWebhookEndpoint({
        endpoint: { id, eventTypes: [] },
        updateMask: { paths: ["event_types"] },
      }),
      Code.InvalidArgument,
    );
    await expectCode(client.webhooks.updateWebhookEndpoint({}), Code.InvalidArgument);
    await expectCode(client.webhooks.updateWebhookEndpoint({ endpoint: { id: "" } }), Code.InvalidArgument);
    await expectCode(client.webhooks.updateWebhookEndpoint({ endpoint: { id: "nope", enabled: true } }), Code.NotFound);
    const other = await tenant();
    await expectCode(
      other.webhooks.updateWebhookEndpoint({ endpoint: { id, enabled: false }, updateMask: { paths: ["enabled"] } }),
      Code.NotFound,
    );
  });

  it("disabling turns pending deliveries into dead letters and enqueues nothing new; a new URL applies to waiting deliveries", async () => {
    const client = await tenant();
    const { endpoint } = await client.webhooks.createWebhookEndpoint({
      url: receiver.url,
      eventTypes: ["task.succeeded"],
    });
    const id = endpoint!.id;
    const first = await finishTask(client);
    const [pending] = (await client.webhooks.listWebhookDeliveries({ taskId: first })).deliveries;
    expect(pending).toMatchObject({ state: DeliveryState.PENDING, endpointId: id, url: receiver.url });
    expect(pending!.nextAttemptTime).toBeDefined();

    await client.webhooks.updateWebhookEndpoint({
      endpoint: { id, url: `${receiver.url}/moved` },
      updateMask: { paths: ["url"] },
    });
    expect((await client.webhooks.listWebhookDeliveries({ taskId: first })).deliveries[0]!.url).toBe(
      `${receiver.url}/moved`,
    );

    await client.webhooks.updateWebhookEndpoint({
      endpoint: { id, enabled: false },
      updateMask: { paths: ["enabled"] },
    });
    expect((await client.webhooks.listWebhookDeliveries({ taskId: first })).deliveries[0]!.state).toBe(
      DeliveryState.FAILED,
    );
    const second = await finishTask(client);
    expect((await client.webhooks.listWebhookDeliveries({ taskId: second })).deliveries).toEqual([]);
  });

  it("deleting removes the endpoint and its deliveries", async () => {
    const client = await tenant();
    const { endpoint } = await client.webhooks.createWebhookEndpoint({
      url: receiver.url,
      eventTypes: ["task.succeeded"],
    });
    const taskId = await finishTask(client);
    expect((await client.webhooks.listWebhookDeliveries({ taskId })).deliveries).toHaveLength(1);
    await client.webhooks.deleteWebhookEndpoint({ endpointId: endpoint!.id });
    expect((await client.webhooks.listWebhookEndpoints({})).endpoints).toEqual([]);
    expect((await client.webhooks.listWebhookDeliveries({ taskId })).deliveries).toEqual([]);
    await expectCode(client.webhooks.deleteWebhookEndpoint({ endpointId: endpoint!.id }), Code.NotFound);
    await expectCode(client.webhooks.deleteWebhookEndpoint({ endpointId: "" }), Code.InvalidArgument);
  });
});

describe("ListWebhookDeliveries", () => {
  it("filters by endpoint, task and state, newest first, in pages", async () => {
    const client = await tenant();
    const a = await client.webhooks.createWebhookEndpoint({ url: `${receiver.url}/a`, eventTypes: ["task.succeeded"] });
    const b = await client.webhooks.createWebhookEndpoint({
      url: `${receiver.url}/b`,
      eventTypes: ["task.succeeded", "task.running"],
    });
    const tasks = [await finishTask(client), await finishTask(client), await finishTask(client)];
    const all = await client.webhooks.listWebhookDeliveries({});
    expect(all.deliveries).toHaveLength(9);
    const ids = all.deliveries.map((d) => d.id);
    expect([...ids].sort().reverse()).toEqual(ids);
    expect((await client.webhooks.listWebhookDeliveries({ endpointId: a.endpoint!.id })).deliveries).toHaveLength(3);
    expect(
      (await client.webhooks.listWebhookDeliveries({ endpointId: b.endpoint!.id, taskId: tasks[0]! })).deliveries,
    ).toHaveLength(2);
    expect(
      (await client.webhooks.listWebhookDeliveries({ states: [DeliveryState.SUCCEEDED] })).deliveries,
    ).toHaveLength(0);

    const paged: string[] = [];
    let pageToken = "";
    do {
      const page = await client.webhooks.listWebhookDeliveries({
        pageSize: 4,
        pageToken,
        states: [DeliveryState.PENDING],
      });
      paged.push(...page.deliveries.map((d) => d.id));
      pageToken = page.nextPageToken;
      if (pageToken) {
        // A token belongs to its filters.
        await expectCode(client.webhooks.listWebhookDeliveries({ pageSize: 4, pageToken }), Code.InvalidArgument);
      }
    } while (pageToken);
    expect(paged).toEqual(ids);

    await expectCode(
      client.webhooks.listWebhookDeliveries({ endpointId: "0190a3c4-0000-7000-8000-000000000000" }),
      Code.NotFound,
    );
    await expectCode(client.webhooks.listWebhookDeliveries({ states: [99 as DeliveryState] }), Code.InvalidArgument);
  });
});

describe("RotateWebhookSecret", () => {
  it("during the grace period both secrets sign; after it only the new one", async () => {
    const client = await tenant();
    const created = await client.webhooks.createWebhookEndpoint({ url: receiver.url, eventTypes: ["task.succeeded"] });
    const rotated = await client.webhooks.rotateWebhookSecret({
      endpointId: created.endpoint!.id,
      gracePeriod: { seconds: 2n },
    });
    expect(rotated.signingSecret).not.toBe(created.signingSecret);
    const expires =
      Number(rotated.previousSecretExpireTime!.seconds) * 1000 + rotated.previousSecretExpireTime!.nanos / 1e6;
    expect(Math.abs(expires - (Date.now() + 2000))).toBeLessThan(1500);

    const notifier = h.startNotifier();
    try {
      const during = await finishTask(client);
      const [r1] = (await receiver.until((r) => r.some((x) => x.body.includes(during)))).filter((x) =>
        x.body.includes(during),
      );
      expect(String(r1!.headers["webhook-signature"]).split(" ")).toHaveLength(2);
      expect(() =>
        new Webhook(created.signingSecret).verify(r1!.body, r1!.headers as Record<string, string>),
      ).not.toThrow();
      expect(() =>
        new Webhook(rotated.signingSecret).verify(r1!.body, r1!.headers as Record<string, string>),
      ).not.toThrow();

      await new Promise((r) => setTimeout(r, Math.max(0, expires - Date.now()) + 100));
      const after = await finishTask(client);
      const [r2] = (await receiver.until((r) => r.some((x) => x.body.includes(after)))).filter((x) =>
        x.body.includes(after),
      );
      expect(String(r2!.headers["webhook-signature"]).split(" ")).toHaveLength(1);
      expect(() =>
        new Webhook(created.signingSecret).verify(r2!.body, r2!.headers as Record<string, string>),
      ).toThrow();
      expect(() =>
        new Webhook(rotated.signingSecret).verify(r2!.body, r2!.headers as Record<string, string>),
      ).not.toThrow();
    } finally {
      await notifier.stop(200);
    }
  });

  it("with no endpoint_id manages the tenant's per-task secret: created on first call, rotated after", async () => {
    const client = await tenant();
    const first = await client.webhooks.rotateWebhookSecret({});
    expect(first.signingSecret).toMatch(/^whsec_/);
    expect(first.previousSecretExpireTime).toBeUndefined();
    const second = await client.webhooks.rotateWebhookSecret({ gracePeriod: { seconds: 0n } });
    expect(second.previousSecretExpireTime).toBeDefined();

    const notifier = h.startNotifier();
    try {
      const { task } = await client.tasks.createTask({
        agent: "simulate",
        input: value({ steps: 0 }),
        webhook: { url: receiver.url, eventTypes: ["task.succeeded"] },
      });
      const got = await receiver.until((r) => r.some((x) => x.body.includes(task!.id)));
      const r = got.find((x) => x.body.includes(task!.id))!;
      expect(() => new Webhook(second.signingSecret).verify(r.body, r.headers as Record<string, string>)).not.toThrow();
      expect(() => new Webhook(first.signingSecret).verify(r.body, r.headers as Record<string, string>)).toThrow();
      await until(
        () => client.webhooks.listWebhookDeliveries({ taskId: task!.id }),
        (x) => x.deliveries[0]?.state === DeliveryState.SUCCEEDED,
      );
    } finally {
      await notifier.stop(200);
    }
  });

  it("refuses unknown endpoints and grace periods out of range", async () => {
    const client = await tenant();
    await expectCode(
      client.webhooks.rotateWebhookSecret({ endpointId: "0190a3c4-0000-7000-8000-000000000000" }),
      Code.NotFound,
    );
    await expectCode(client.webhooks.rotateWebhookSecret({ gracePeriod: { seconds: -1n } }), Code.InvalidArgument);
    await expectCode(
      client.webhooks.rotateWebhookSecret({ gracePeriod: { seconds: 8n * 86400n } }),
      Code.InvalidArgument,
    );
  });
});

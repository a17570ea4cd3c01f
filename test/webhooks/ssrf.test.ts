// The SSRF guard: forbidden destinations are refused when a URL is registered
// (INVALID_ARGUMENT) and again at every send, on the address actually
// connected to — a hostname that resolves to a forbidden address included.
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryState } from "../../gen/agentd/v1/webhook_service_pb.js";
import { sendDelivery } from "../../services/notifier/send-delivery.js";
import { createAddressGuard, forbiddenReason } from "../../services/shared/webhooks/address-guard.js";
import { checkDestination } from "../../services/shared/webhooks/url-policy.js";
import { badRequest, errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, startWebhookHarness, type WebhookHarness } from "./support.js";

/** One address of every forbidden kind, with what the guard calls it. */
const FORBIDDEN: [string, RegExp][] = [
  ["127.0.0.1", /loopback/],
  ["127.255.0.9", /loopback/],
  ["10.1.2.3", /private/],
  ["172.16.0.1", /private/],
  ["172.31.255.255", /private/],
  ["192.168.1.1", /private/],
  ["169.254.169.254", /link-local/],
  ["169.254.0.1", /link-local/],
  ["100.64.0.1", /carrier-grade NAT/],
  ["100.127.255.254", /carrier-grade NAT/],
  ["224.0.0.1", /multicast/],
  ["239.255.255.250", /multicast/],
  ["240.0.0.1", /reserved/],
  ["255.255.255.255", /reserved/],
  ["0.0.0.0", /unspecified/],
  ["0.1.2.3", /unspecified/],
  ["192.0.0.8", /reserved/],
  ["192.0.2.1", /documentation/],
  ["198.18.0.1", /benchmarking/],
  ["198.51.100.7", /documentation/],
  ["203.0.113.9", /documentation/],
  ["::1", /loopback/],
  ["::", /unspecified/],
  ["fd00::1", /unique-local/],
  ["fc00::1", /unique-local/],
  ["fe80::1", /link-local/],
  ["febf::1", /link-local/],
  ["ff02::1", /multicast/],
  ["2001:db8::1", /documentation/],
  ["100::1", /discard/],
  ["::ffff:127.0.0.1", /loopback, embedded/],
  ["::ffff:7f00:1", /loopback, embedded/],
  ["::ffff:169.254.169.254", /link-local .*embedded/],
  ["::ffff:10.0.0.1", /private, embedded/],
  ["::ffff:0:a00:1", /private, embedded/],
  ["::127.0.0.1", /loopback, embedded/],
  ["64:ff9b::a9fe:a9fe", /link-local .*embedded/],
  ["64:ff9b:1::1", /NAT64/],
  ["2002:a00:1::1", /private, embedded/],
  ["2001::1", /reserved/],
  ["4000::1", /outside IPv6 global unicast/],
];

const ALLOWED = [
  "8.8.8.8",
  "1.1.1.1",
  "100.128.0.1",
  "172.32.0.1",
  "2606:4700:4700::1111",
  "::ffff:8.8.8.8",
  "64:ff9b::808:808",
];

describe("the address table", () => {
  it.each(FORBIDDEN)("refuses %s (%s)", (address, why) => {
    expect(forbiddenReason(address)).toMatch(why);
    expect(createAddressGuard({ allowCidrs: [] }).check(address).allowed).toBe(false);
  });

  it.each(ALLOWED)("allows %s", (address) => {
    expect(forbiddenReason(address)).toBeNull();
  });

  it("opens exactly the allowlisted ranges, IPv4-mapped forms included", () => {
    const guard = createAddressGuard({ allowCidrs: ["127.0.0.0/8", "fd00::/8"] });
    expect(guard.check("127.0.0.1").allowed).toBe(true);
    expect(guard.check("::ffff:127.0.0.1").allowed).toBe(true);
    expect(guard.check("fd12::1").allowed).toBe(true);
    expect(guard.check("::1").allowed).toBe(false);
    expect(guard.check("10.0.0.1").allowed).toBe(false);
    expect(() => createAddressGuard({ allowCidrs: ["10.0.0.0/33"] })).toThrow(/invalid CIDR/);
  });

  it("refuses a hostname that resolves to a forbidden address", async () => {
    const problem = await checkDestination(new URL("https://localhost/hook"), createAddressGuard({ allowCidrs: [] }));
    expect(problem).toMatchObject({ reason: "FORBIDDEN_DESTINATION" });
    expect(problem?.description).toMatch(/localhost \((127\.0\.0\.1|::1)\) is loopback/);
  });
});

describe("at registration", () => {
  let h: WebhookHarness;
  beforeAll(async () => {
    h = await startWebhookHarness({ config: { webhookAllowCidrs: [], webhookAllowHttp: false }, notifier: false });
    await h.agentd.client.webhooks.rotateWebhookSecret({});
  });
  afterAll(async () => {
    await h?.close();
  });

  const urls = [
    ...FORBIDDEN.map(([address]) => (address.includes(":") ? `https://[${address}]/hook` : `https://${address}/hook`)),
    "https://localhost:8443/hook",
    "https://0x7f.1/hook",
    "https://2130706433/hook",
  ];

  it.each(urls)("CreateWebhookEndpoint refuses %s", async (url) => {
    const err = await expectCode(
      h.agentd.client.webhooks.createWebhookEndpoint({ url, eventTypes: ["task.failed"] }),
      Code.InvalidArgument,
    );
    const [violation] = badRequest(err)!.fieldViolations;
    expect(violation).toMatchObject({ field: "url", reason: "FORBIDDEN_DESTINATION" });
  });

  it("accepts a public address, then refuses to move it somewhere forbidden", async () => {
    const { endpoint } = await h.agentd.client.webhooks.createWebhookEndpoint({
      url: "https://8.8.8.8/hook",
      eventTypes: ["task.failed"],
    });
    const err = await expectCode(
      h.agentd.client.webhooks.updateWebhookEndpoint({
        endpoint: { id: endpoint!.id, url: "https://169.254.169.254/" },
        updateMask: { paths: ["url"] },
      }),
      Code.InvalidArgument,
    );
    expect(badRequest(err)!.fieldViolations[0]).toMatchObject({
      field: "endpoint.url",
      reason: "FORBIDDEN_DESTINATION",
    });
  });

  it("requires https unless the server allows http", async () => {
    const err = await expectCode(
      h.agentd.client.webhooks.createWebhookEndpoint({ url: "http://8.8.8.8/hook", eventTypes: ["task.failed"] }),
      Code.InvalidArgument,
    );
    expect(badRequest(err)!.fieldViolations[0]).toMatchObject({ field: "url", reason: "INSECURE_URL" });
  });

  it("checks per-task webhooks too", async () => {
    for (const url of ["https://localhost/x", "https://[::ffff:10.0.0.1]/x", "http://8.8.8.8/x"]) {
      const err = await expectCode(
        h.agentd.client.tasks.createTask({
          agent: "simulate",
          input: value({}),
          webhook: { url, eventTypes: ["task.succeeded"] },
        }),
        Code.InvalidArgument,
      );
      expect(badRequest(err)!.fieldViolations[0]!.field).toBe("webhook.url");
      expect(["FORBIDDEN_DESTINATION", "INSECURE_URL"]).toContain(errorInfo(err)?.reason);
    }
    await h.agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({}),
      webhook: { url: "https://8.8.8.8/x", eventTypes: ["task.succeeded"] },
    });
  });
});

describe("at send", () => {
  let h: WebhookHarness;
  let receiver: Receiver;
  beforeAll(async () => {
    // The agent service allows loopback (as if DNS pointed elsewhere at registration); the notifier does not.
    h = await startWebhookHarness({
      config: { webhookAllowCidrs: ["127.0.0.0/8", "::1/128"] },
      notifierConfig: { webhookAllowCidrs: [], webhookRetryScheduleMs: [] },
    });
    receiver = await startReceiver();
    await h.agentd.client.webhooks.rotateWebhookSecret({});
  });
  afterAll(async () => {
    await h?.close();
    await receiver?.close();
  });

  it.each([
    ["an IP literal", (port: string) => `http://127.0.0.1:${port}/hook`],
    ["a hostname that resolves to loopback", (port: string) => `http://localhost:${port}/hook`],
  ])("refuses %s: the attempt fails with a clear error and nothing is sent", async (_name, urlFor) => {
    const port = new URL(receiver.url).port;
    const { task } = await h.agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 0 }),
      webhook: { url: urlFor(port), eventTypes: ["task.succeeded"] },
    });
    const { deliveries } = await until(
      () => h.agentd.client.webhooks.listWebhookDeliveries({ taskId: task!.id }),
      (r) => r.deliveries[0]?.state === DeliveryState.FAILED,
    );
    expect(deliveries[0]!.attempts[0]!.statusCode).toBe(0);
    expect(deliveries[0]!.attempts[0]!.error).toMatch(/^destination refused: .*(127\.0\.0\.1|::1).*loopback/);
    expect(receiver.received).toHaveLength(0);
  });

  it.each(FORBIDDEN.map(([a]) => a))("sendDelivery refuses %s without connecting", async (address) => {
    const host = address.includes(":") ? `[${address}]` : address;
    const result = await sendDelivery({
      url: `http://${host}:9/hook`,
      headers: {},
      body: "{}",
      timeoutMs: 1000,
      allowHttp: true,
      guard: createAddressGuard({ allowCidrs: [] }),
    });
    expect(result).toMatchObject({ kind: "refused", status: 0 });
    expect(result.error).toMatch(/^destination refused/);
  });

  it("refuses plain http when the notifier does not allow it", async () => {
    const result = await sendDelivery({
      url: receiver.url,
      headers: {},
      body: "{}",
      timeoutMs: 1000,
      allowHttp: false,
      guard: createAddressGuard({ allowCidrs: ["127.0.0.0/8"] }),
    });
    expect(result).toMatchObject({ kind: "refused" });
    expect(result.error).toMatch(/plain http is not allowed/);
    expect(receiver.received).toHaveLength(0);
  });
});

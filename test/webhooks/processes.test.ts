// Real notifier processes on one database: a notifier killed mid-delivery
// loses nothing, and two notifiers never send the same attempt at once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryState } from "../../gen/agentd/v1/webhook_service_pb.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import {
  type NotifierProcess,
  type Received,
  type Receiver,
  type Reply,
  spawnNotifier,
  startReceiver,
  WEBHOOK_TEST_CONFIG,
} from "./support.js";

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let agentd: TestAgentd;
const processes: NotifierProcess[] = [];
const receivers: Receiver[] = [];

beforeAll(async () => {
  shared = await startSharedTestDatabase();
  // The agent service in this process writes the outbox; notifiers are children.
  agentd = await startAgentd({ url: shared.url, config: WEBHOOK_TEST_CONFIG });
  await agentd.client.webhooks.rotateWebhookSecret({});
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  await Promise.all(receivers.map((r) => r.close()));
  await agentd?.close();
  await shared?.close();
});

async function notifier(env: Record<string, string> = {}) {
  const p = await spawnNotifier({ databaseUrl: shared.url, env });
  processes.push(p);
  return p;
}

async function receiver(reply: (r: Received) => Reply) {
  const r = await startReceiver(reply);
  receivers.push(r);
  return r;
}

async function createTasks(n: number, url: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 0 }),
      webhook: { url, eventTypes: ["task.succeeded"] },
    });
    ids.push(task!.id);
  }
  return ids;
}

const allDeliveries = async (taskIds: string[]) =>
  (await Promise.all(taskIds.map((taskId) => agentd.client.webhooks.listWebhookDeliveries({ taskId })))).flatMap(
    (r) => r.deliveries,
  );

describe("a notifier killed with SIGKILL mid-delivery", () => {
  it("loses nothing: after restart every delivery is made, with the same webhook-id", {
    timeout: 150_000,
  }, async () => {
    let killed = false;
    // Hold the first request open until the notifier that sent it is dead.
    const r = await receiver(({ index }) =>
      index === 0 && !killed ? { status: 200, delayMs: 60_000 } : { status: 200 },
    );
    const a = await notifier();
    const tasks = await createTasks(10, r.url);
    const [first] = await r.until((x) => x.length >= 1);
    await a.kill("SIGKILL");
    killed = true;

    await notifier();
    const deliveries = await until(
      () => allDeliveries(tasks),
      (d) => d.length === 10 && d.every((x) => x.state === DeliveryState.SUCCEEDED),
      { ms: 90_000, everyMs: 200 }, // generous: a loaded machine starts the second notifier slowly
    );
    const ids = new Set(deliveries.map((d) => d.id));
    const receivedIds = new Set(r.received.map((x) => String(x.headers["webhook-id"])));
    for (const id of ids) expect(receivedIds.has(id)).toBe(true);
    // The one cut short was sent again under its own id, its lost attempt on record.
    const interrupted = deliveries.find((d) => d.id === first!.headers["webhook-id"])!;
    // Lost with the notifier (lease expired) — or, on a machine slow enough that the kill comes
    // after the 1 s send timeout, recorded by the notifier itself as a timeout first.
    expect(interrupted.attempts[0]!.error).toMatch(/lease expired|no complete answer/);
    expect(interrupted.attempts.at(-1)!.statusCode).toBe(200);
    expect(r.received.filter((x) => x.headers["webhook-id"] === interrupted.id).length).toBeGreaterThanOrEqual(2);
  });
});

describe("two notifier processes", () => {
  it("share the work and never send the same delivery twice at once", async () => {
    // Only these two run.
    await Promise.all(processes.map((p) => p.kill("SIGKILL")));
    // Each request's time at the receiver, from arrival to answer, per webhook-id.
    const spans = new Map<string, [number, number][]>();
    const r = await receiver((req) => {
      const delayMs = 5 + Math.floor(Math.random() * 20);
      const id = String(req.headers["webhook-id"]);
      const at = req.at;
      spans.set(id, [...(spans.get(id) ?? []), [at, at + delayMs]]);
      return { status: 200, delayMs };
    });
    const a = await notifier({ AGENTD_WEBHOOK_CONCURRENCY: "8" });
    const b = await notifier({ AGENTD_WEBHOOK_CONCURRENCY: "8" });
    const tasks = await createTasks(120, r.url);
    const deliveries = await until(
      () => allDeliveries(tasks),
      (d) => d.length === 120 && d.every((x) => x.state === DeliveryState.SUCCEEDED),
      { ms: 30_000, everyMs: 300 },
    );
    expect(spans.size).toBe(120);
    for (const [id, list] of spans) {
      const sorted = [...list].sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < sorted.length; i++)
        expect(sorted[i]![0], `webhook-id ${id} was in flight twice at once`).toBeGreaterThanOrEqual(sorted[i - 1]![1]);
    }
    // All answered 200 at once, so each was sent exactly once, by one of the two.
    for (const d of deliveries) expect(d.attempts).toHaveLength(1);
    expect(r.received).toHaveLength(120);
    const delivered = (p: NotifierProcess) => p.logs.filter((l) => l.msg === "webhook delivered").length;
    expect(delivered(a) + delivered(b)).toBe(120);
    expect(delivered(a)).toBeGreaterThan(0);
    expect(delivered(b)).toBeGreaterThan(0);
  });
});

// A notifier killed with SIGKILL holding claims it never started sending charges
// them no attempt: once its lease expires they are handed back as they were, while
// the one it was sending is recorded as a lost attempt and retried.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryState } from "../../gen/agentd/v1/webhook_service_pb.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type NotifierProcess, type Receiver, spawnNotifier, startReceiver, WEBHOOK_TEST_CONFIG } from "./support.js";

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let agentd: TestAgentd;
let receiver: Receiver;
const processes: NotifierProcess[] = [];
let killed = false;

beforeAll(async () => {
  shared = await startSharedTestDatabase();
  agentd = await startAgentd({ url: shared.url, config: WEBHOOK_TEST_CONFIG });
  await agentd.client.webhooks.rotateWebhookSecret({});
  // Holds every request open until the first notifier is dead; then answers at once.
  receiver = await startReceiver(() => (killed ? { status: 200 } : { status: 200, delayMs: 60_000 }));
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  await receiver?.close();
  await agentd?.close();
  await shared?.close();
});

interface Row {
  delivery_id: string;
  state: string;
  attempts: number;
  started_at: Date | null;
}

const rows = (taskIds: string[]) =>
  agentd.db.sql<Row[]>`
    SELECT delivery_id::text, state, attempts, started_at FROM webhook_deliveries WHERE task_id = ANY (${taskIds}::uuid[])
  `;

describe("a notifier killed right after claiming", () => {
  it("charges no attempt to the claims it never started, and one lost attempt to the one it was sending", async () => {
    const tasks: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { task } = await agentd.client.tasks.createTask({
        agent: "simulate",
        input: value({ steps: 0 }),
        webhook: { url: receiver.url, eventTypes: ["task.succeeded"] },
      });
      tasks.push(task!.id);
    }
    await until(
      () => rows(tasks),
      (r) => r.length === 3,
    );

    // One sending slot, two claims held: one is sent (and hangs), one waits for the slot, unstarted.
    // Timeout and lease are long enough (on a slow machine too) that neither the hanging attempt
    // times out nor the waiting claim is handed back before the kill.
    const a = await spawnNotifier({
      databaseUrl: shared.url,
      env: {
        AGENTD_WEBHOOK_CONCURRENCY: "1",
        AGENTD_WEBHOOK_ENDPOINT_CONCURRENCY: "1",
        AGENTD_WEBHOOK_TIMEOUT_MS: "8000",
        AGENTD_NOTIFIER_LEASE_MS: "18000",
      },
    });
    processes.push(a);
    await receiver.until((r) => r.length >= 1);
    const held = await until(
      () => rows(tasks),
      (r) => r.filter((x) => x.state === "SENDING").length === 2,
    );
    const sent = held.find((x) => x.state === "SENDING" && x.started_at !== null)!;
    const unstarted = held.find((x) => x.state === "SENDING" && x.started_at === null)!;
    expect(sent.attempts).toBe(1);
    expect(unstarted.attempts).toBe(0);
    expect(String(receiver.received[0]!.headers["webhook-id"])).toBe(sent.delivery_id);
    await a.kill("SIGKILL");
    killed = true;

    processes.push(await spawnNotifier({ databaseUrl: shared.url }));
    const deliveries = await until(
      async () =>
        (await Promise.all(tasks.map((taskId) => agentd.client.webhooks.listWebhookDeliveries({ taskId })))).flatMap(
          (r) => r.deliveries,
        ),
      (d) => d.length === 3 && d.every((x) => x.state === DeliveryState.SUCCEEDED),
      { ms: 30_000, everyMs: 200 },
    );
    const byId = new Map(deliveries.map((d) => [d.id, d]));
    // The one in flight when the notifier died: a lost attempt, then a successful one.
    const lost = byId.get(sent.delivery_id)!;
    expect(lost.attempts.map((x) => x.attempt)).toEqual([1, 2]);
    expect(lost.attempts[0]!.error).toMatch(/lease expired/);
    expect(lost.attempts[1]!.statusCode).toBe(200);
    // The claimed-but-unstarted one, and the one never claimed: one attempt each, the first.
    for (const d of deliveries.filter((x) => x.id !== sent.delivery_id)) {
      expect(d.attempts.map((x) => [x.attempt, x.statusCode])).toEqual([[1, 200]]);
    }
    expect(byId.get(unstarted.delivery_id)).toBeDefined();
    const final = await rows(tasks);
    expect(final.find((x) => x.delivery_id === unstarted.delivery_id)?.attempts).toBe(1);
    expect(final.find((x) => x.delivery_id === sent.delivery_id)?.attempts).toBe(2);
  }, 120_000);
});

// Amplification: what one large request costs in storage and in webhook bodies. A task's
// large fields are kept about once in its row and once in its log (state_change snapshots
// carry input only in the first event, output only in the terminal one), and every webhook
// body is bounded, large fields replaced by a reference (GetTask).
import { randomBytes } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import type { AgentDefinition } from "../../services/agent/agents/agent.js";
import { createNotifier, type Notifier } from "../../services/notifier/notifier.js";
import { loadConfig } from "../../services/shared/config.js";
import { silentLogger } from "../../services/shared/log.js";
import { listAllEvents } from "../streams/support.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { plain, value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, WEBHOOK_TEST_CONFIG } from "../webhooks/support.js";

const MAX_PAYLOAD = 16 * 1024;

/** Takes a large input, reports progress, asks one question, and answers small. */
const hold: AgentDefinition<{ blob: string }> = {
  name: "hold",
  version: "1.0.0",
  description: "Holds a large input through several state changes.",
  inputSchema: { type: "object", properties: { blob: { type: "string" } }, required: ["blob"] },
  outputSchema: {},
  async run(input, ctx) {
    for (let step = 1; step <= 3; step++) await ctx.progress({ step, totalSteps: 3 });
    const answer = await ctx.requestInput({ prompt: "go on?", schema: { type: "boolean" } });
    return { size: input.blob.length, answer };
  },
};

/** Random (incompressible) text: storage is measured as JSON text, so compression cannot hide a copy. */
const blob = (bytes: number) =>
  randomBytes(Math.ceil((bytes * 3) / 4))
    .toString("base64")
    .slice(0, bytes);

let agentd: TestAgentd;
let receiver: Receiver;
let notifier: Notifier;

beforeAll(async () => {
  agentd = await startAgentd({
    agents: [hold],
    config: { ...WEBHOOK_TEST_CONFIG, webhookMaxPayloadBytes: MAX_PAYLOAD },
  });
  notifier = createNotifier({
    db: agentd.db,
    bus: agentd.bus,
    config: loadConfig({}, {}, { ...WEBHOOK_TEST_CONFIG, pollMs: 200 }),
    logger: silentLogger(),
  });
  notifier.start();
  receiver = await startReceiver();
  await agentd.client.webhooks.rotateWebhookSecret({});
  await agentd.client.webhooks.createWebhookEndpoint({
    url: `${receiver.url}?endpoint`,
    eventTypes: [
      "task.running",
      "task.input_required",
      "task.succeeded",
      "task.failed",
      "task.canceled",
      "task.progress",
    ],
  });
});
afterAll(async () => {
  await notifier?.stop(500);
  await agentd?.close();
  await receiver?.close();
});

/** JSON text bytes a task holds in the tasks row, its events and its deliveries. */
async function storedBytes(
  taskId: string,
): Promise<{ task: number; events: number; deliveries: number; count: number }> {
  const [row] = await agentd.db.sql<{ task: string; events: string; deliveries: string; count: string }[]>`
    SELECT
      (SELECT coalesce(sum(octet_length(t::text)), 0) FROM tasks t WHERE t.task_id = ${taskId}) AS task,
      (SELECT coalesce(sum(octet_length(e.data::text)), 0) FROM task_events e WHERE e.task_id = ${taskId}) AS events,
      (SELECT coalesce(sum(octet_length(d.payload::text)), 0) FROM webhook_deliveries d WHERE d.task_id = ${taskId}) AS deliveries,
      (SELECT count(*) FROM webhook_deliveries d WHERE d.task_id = ${taskId}) AS count
  `;
  return {
    task: Number(row!.task),
    events: Number(row!.events),
    deliveries: Number(row!.deliveries),
    count: Number(row!.count),
  };
}

describe("a large request", () => {
  it("is stored within a small constant of its size, and its webhook bodies stay within the bound", async () => {
    const input = { blob: blob(2 * 1024 * 1024) };
    const requestBytes = Buffer.byteLength(JSON.stringify({ agent: "hold", input }));
    const { task } = await agentd.client.tasks.createTask({
      agent: "hold",
      input: value(input),
      webhook: {
        url: `${receiver.url}?task`,
        eventTypes: ["task.running", "task.input_required", "task.succeeded", "task.progress"],
      },
    });
    const asked = await agentd.client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 30n } });
    expect(asked.task?.state).toBe(TaskState.INPUT_REQUIRED);
    await agentd.client.tasks.provideInput({ taskId: task!.id, value: value(true) });
    const done = await agentd.client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 30n } });
    expect(done.task?.state).toBe(TaskState.SUCCEEDED);

    // Every delivery of this task arrives: two subscribers, each: running ×2 (or more), progress ×6 (the agent runs
    // again from the top after the answer), input_required, succeeded.
    const mine = (r: { body: string }) => r.body.includes(task!.id);
    await until(
      () => agentd.db.sql<{ n: number; done: number }[]>`
        SELECT count(*)::int AS n, count(*) FILTER (WHERE state = 'SUCCEEDED')::int AS done FROM webhook_deliveries WHERE task_id = ${task!.id}`,
      ([r]) => r!.n >= 20 && r!.done === r!.n,
      60_000,
    );
    const bodies = receiver.received.filter(mine);
    for (const b of bodies) expect(Buffer.byteLength(b.body)).toBeLessThanOrEqual(MAX_PAYLOAD);
    const totalWebhookBytes = bodies.reduce((n, b) => n + Buffer.byteLength(b.body), 0);
    expect(totalWebhookBytes).toBeLessThanOrEqual(bodies.length * MAX_PAYLOAD);

    // The large field is replaced by a reference: named in omittedFields, fetched with GetTask.
    const succeeded = bodies
      .map((b) => JSON.parse(b.body) as { type: string; data: JsonObject })
      .find((b) => b.type === "task.succeeded")!;
    expect(succeeded.data.omittedFields).toEqual(["input"]);
    const task_ = succeeded.data.task as JsonObject;
    expect(task_.id).toBe(task!.id);
    expect(task_.input).toBeUndefined();
    expect(task_.output).toEqual({ size: input.blob.length, answer: true });
    const fetched = await agentd.client.tasks.getTask({ taskId: String(task_.id) });
    expect(plain(fetched.task?.input)).toEqual(input);

    const stored = await storedBytes(task!.id);
    const total = stored.task + stored.events + stored.deliveries;
    // The row and the first event each hold the input once; the rest is small.
    expect(new Set(bodies.map((b) => b.headers["webhook-id"])).size).toBe(stored.count);
    expect(stored.deliveries).toBeLessThanOrEqual(stored.count * MAX_PAYLOAD);
    expect(total).toBeLessThanOrEqual(3 * requestBytes);
    console.log(
      `request ${requestBytes} B → stored ${total} B (${(total / requestBytes).toFixed(2)}×: tasks ${stored.task}, events ${stored.events}, ` +
        `${stored.count} deliveries ${stored.deliveries}); webhook bodies ${totalWebhookBytes} B`,
    );

    // The log keeps what DESIGN promises: input in the first snapshot, output in the terminal one.
    const events = await listAllEvents(agentd.client, task!.id);
    const snapshots = events.flatMap((e) =>
      e.event.case === "stateChange" ? [{ seq: Number(e.sequence), task: e.event.value.task! }] : [],
    );
    expect(snapshots[0]?.seq).toBe(1);
    expect(plain(snapshots[0]?.task.input)).toEqual(input);
    for (const s of snapshots.slice(1)) expect(s.task.input).toBeUndefined();
    expect(plain(snapshots.at(-1)?.task.output)).toEqual({ size: input.blob.length, answer: true });
    for (const s of snapshots.slice(0, -1)) expect(s.task.output).toBeUndefined();
  }, 90_000);
});

// Group commit through the API: many CreateTask and Run calls at once are written in shared
// inserts, and each caller still gets its own durable task with its first event, request ids
// still make one task per request, and webhook deliveries commit with their tasks.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentDefinition } from "../../services/agent/agents/agent.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { plain, value } from "../support/json.js";

const echo: AgentDefinition = {
  name: "echo",
  version: "1.0.0",
  description: "Answers its input.",
  inputSchema: { type: "object" },
  outputSchema: {},
  run: async (input) => input,
};

const steps: AgentDefinition = {
  name: "steps",
  version: "1.0.0",
  description: "Reports progress twenty times, then answers.",
  inputSchema: { type: "object" },
  outputSchema: {},
  run: async (input, ctx) => {
    for (let step = 1; step <= 20; step++) await ctx.progress({ step, totalSteps: 20 });
    return input;
  },
};

let agentd: TestAgentd;
beforeAll(async () => {
  // API only: created tasks stay QUEUED, so what the insert wrote is what the test reads.
  agentd = await startAgentd({
    agents: [echo, steps],
    config: { runnerConcurrency: 0, webhookAllowHttp: true, webhookAllowCidrs: ["127.0.0.0/8"] },
  });
});
afterAll(async () => {
  await agentd?.close();
});

async function batchesObserved(metric: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${agentd.url}/metrics`)).text();
  const read = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? 0);
  return { sum: read(`${metric}_sum`), count: read(`${metric}_count`) };
}
const batchRowsObserved = () => batchesObserved("agentd_task_insert_batch_rows");

describe("group commit", () => {
  it("answers each of many concurrent CreateTask calls with its own durable task and first event", async () => {
    const before = await batchRowsObserved();
    const calls = Array.from({ length: 120 }, (_, i) =>
      agentd.client.tasks.createTask({ agent: "echo", input: value({ i }), labels: { n: String(i) } }),
    );
    const tasks = (await Promise.all(calls)).map((r) => r.task!);
    expect(new Set(tasks.map((t) => t.id)).size).toBe(120);
    for (const [i, task] of tasks.entries()) {
      const { task: stored } = await agentd.client.tasks.getTask({ taskId: task.id });
      expect(stored?.labels).toEqual({ n: String(i) });
      expect(plain(stored?.input)).toEqual({ i });
      const { events } = await agentd.client.tasks.listTaskEvents({ taskId: task.id });
      expect(events.map((e) => [Number(e.sequence), e.event.case])).toEqual([[1, "stateChange"]]);
    }
    const after = await batchRowsObserved();
    expect(after.sum - before.sum).toBe(120);
    // Fewer statements than calls: calls that arrived together shared inserts.
    expect(after.count - before.count).toBeLessThan(120);
  });

  it("keeps request ids: a retry gets the same task, a reuse with another request ALREADY_EXISTS", async () => {
    const outcome = (p: Promise<{ task?: { id: string } }>) =>
      p.then(
        (r) => ({ id: r.task!.id }),
        (err: unknown) => ({ code: ConnectError.from(err).code }),
      );
    const same = Array.from({ length: 10 }, () =>
      outcome(agentd.client.tasks.createTask({ agent: "echo", input: value({ same: true }), requestId: "gc-same" })),
    );
    const reused = Array.from({ length: 10 }, (_, i) =>
      outcome(agentd.client.tasks.createTask({ agent: "echo", input: value({ i }), requestId: "gc-reused" })),
    );
    const sameResults = await Promise.all(same);
    expect(new Set(sameResults.map((r) => ("id" in r ? r.id : r.code))).size).toBe(1);
    expect(sameResults[0]).toHaveProperty("id");
    const reusedResults = await Promise.all(reused);
    expect(reusedResults.filter((r) => "id" in r)).toHaveLength(1);
    expect(reusedResults.filter((r) => "code" in r && r.code === Code.AlreadyExists)).toHaveLength(9);
  });

  it("runs many concurrent Run calls to completion, each with its webhook delivery committed", async () => {
    await agentd.client.webhooks.createWebhookEndpoint({
      url: "http://127.0.0.1:9/hook",
      eventTypes: ["task.running"],
    });
    const runs = await Promise.all(
      Array.from({ length: 40 }, (_, i) => agentd.client.agents.run({ agent: "echo", input: value({ run: i }) })),
    );
    for (const [i, run] of runs.entries()) {
      expect(plain(run.task?.output)).toEqual({ run: i });
      const [row] = await agentd.db.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM webhook_deliveries WHERE task_id = ${run.task!.id} AND event_type = 'task.running'
      `;
      expect(row?.n).toBe(1);
    }
  });

  it("writes the progress of many running tasks in shared statements, each task's log gapless and in order", async () => {
    const before = await batchesObserved("agentd_task_append_batch_changes");
    const runs = await Promise.all(
      Array.from({ length: 30 }, (_, i) => agentd.client.agents.run({ agent: "steps", input: value({ run: i }) })),
    );
    for (const [i, run] of runs.entries()) {
      expect(plain(run.task?.output)).toEqual({ run: i });
      const { events } = await agentd.client.tasks.listTaskEvents({ taskId: run.task!.id, pageSize: 100 });
      expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, n) => n + 1));
      const progress = events.filter((e) => e.event.case === "progress");
      expect(progress.map((e) => (e.event.case === "progress" ? e.event.value.step : 0))).toEqual(
        Array.from({ length: 20 }, (_, n) => n + 1),
      );
    }
    const after = await batchesObserved("agentd_task_append_batch_changes");
    // 30 tasks × (20 progress + the end) changes, in fewer statements than changes. Most, not all:
    // a change can take the outbox's transaction instead, e.g. while its tenant's webhook subscriptions are
    // unknown to this process (the cache expired and its refresh is late, as on a loaded machine).
    expect(after.sum - before.sum).toBeGreaterThan((30 * 21) / 2);
    expect(after.count - before.count).toBeLessThan(after.sum - before.sum);
  });
});

// A runner that stops while an attempt is still running past the grace period
// hands its task back to the queue without charging an attempt, and the
// service's metrics count that attempt as retried for reason shutdown. The
// runner runs on a real database with the writer observed as service.ts does.
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { defineAgent } from "../../services/agent/agents/agent.js";
import { createAgentRegistry } from "../../services/agent/agents/registry.js";
import { createServiceMetrics } from "../../services/agent/observe/service-metrics.js";
import { observeTaskWriter } from "../../services/agent/observe/task-observer.js";
import { createTaskRunner } from "../../services/agent/runner/task-runner.js";
import { findTask } from "../../services/agent/store/find-task.js";
import { createTaskWriter } from "../../services/agent/store/task-writer.js";
import { newTaskRow } from "../../services/agent/tasks/new-task.js";
import { silentLogger } from "../../services/shared/log.js";
import { createLocalWakeupBus } from "../../services/shared/wakeup/bus.js";
import { useTestDatabase } from "../support/database.js";
import { until } from "../support/until.js";

const testDatabase = useTestDatabase();

describe("a runner shutting down", () => {
  it("hands a task still running after the grace period back to the queue, counted as retried for shutdown", async () => {
    let started = false;
    const agent = defineAgent<Record<string, never>, Record<string, never>>({
      name: "long-haul",
      version: "1.0.0",
      description: "Runs until it is stopped.",
      inputSchema: { type: "object" },
      outputSchema: { type: "object" },
      async run(_input, ctx) {
        started = true;
        await new Promise((_resolve, reject) =>
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true }),
        );
        return {};
      },
    });
    const bus = createLocalWakeupBus();
    const writer = createTaskWriter({ sql: testDatabase.db.sql, bus });
    const registry = new Registry();
    const runner = createTaskRunner({
      writer: observeTaskWriter(writer, createServiceMetrics({ registry, sql: testDatabase.db.sql, poolMax: 1 })),
      registry: createAgentRegistry([agent]),
      bus,
      logger: silentLogger(),
      findTask: (key) => findTask(testDatabase.db.sql, key),
      options: {
        owner: "stopping-runner",
        concurrency: 1,
        leaseMs: 30_000,
        heartbeatMs: 100,
        pollMs: 100,
        retryBackoffMs: 100,
        deltaWindowMs: 10,
      },
    });
    const row = newTaskRow(
      "t1",
      "1.0.0",
      {
        agent: "long-haul",
        input: {},
        requestId: null,
        labels: {},
        timeoutMs: 60_000,
        maxAttempts: 1,
        webhook: null,
      },
      "",
      new Date(),
    );
    const inserted = await writer.insert(row);
    const key = { tenantId: "t1", taskId: inserted!.task.task_id };
    runner.start();
    await until(
      async () => started,
      (s) => s,
      20_000,
    );

    await runner.stop(100);
    const after = await findTask(testDatabase.db.sql, key);
    expect(after).toMatchObject({ state: "QUEUED", attempt: 1, lease_owner: null });
    const retried = await registry.getSingleMetric("agentd_task_attempts_retried_total")?.get();
    expect(retried?.values).toEqual([{ labels: { agent: "long-haul", reason: "shutdown" }, value: 1 }]);
  });
});

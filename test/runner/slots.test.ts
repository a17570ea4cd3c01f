// A runner's slots hold agents at work: an attempt whose agent has ended gives its slot up while
// its ending is written, so the next task's claim need not wait for that write; and no more than
// `concurrency` endings are written at once before they take slots again. The writes of endings
// are held here until the test releases them, on a real database.
import { describe, expect, it } from "vitest";
import { defineAgent } from "../../services/agent/agents/agent.js";
import { createAgentRegistry } from "../../services/agent/agents/registry.js";
import { createTaskRunner } from "../../services/agent/runner/task-runner.js";
import { findTask } from "../../services/agent/store/find-task.js";
import { createTaskWriter, type TaskWriter } from "../../services/agent/store/task-writer.js";
import { newTaskRow } from "../../services/agent/tasks/new-task.js";
import { silentLogger } from "../../services/shared/log.js";
import { createLocalWakeupBus } from "../../services/shared/wakeup/bus.js";
import { useTestDatabase } from "../support/database.js";
import { until } from "../support/until.js";

const testDatabase = useTestDatabase();

describe("a runner's slots", () => {
  it("let the next task start while an ended attempt's result is written, up to concurrency such writes", async () => {
    const started: string[] = [];
    const agent = defineAgent<{ name: string }, { name: string }>({
      name: "quick",
      version: "1.0.0",
      description: "Ends at once.",
      inputSchema: { type: "object" },
      outputSchema: { type: "object" },
      async run(input) {
        started.push(input.name);
        return { name: input.name };
      },
    });
    const bus = createLocalWakeupBus();
    const writer = createTaskWriter({ sql: testDatabase.db.sql, bus });
    // Endings are written with changeHeld; each waits here until released.
    const held: (() => void)[] = [];
    const holding: TaskWriter = {
      ...writer,
      changeHeld: async (current, decide, fence) => {
        await new Promise<void>((release) => held.push(release));
        return writer.changeHeld(current, decide, fence);
      },
    };
    const runner = createTaskRunner({
      writer: holding,
      registry: createAgentRegistry([agent]),
      bus,
      logger: silentLogger(),
      findTask: (key) => findTask(testDatabase.db.sql, key),
      options: {
        owner: "slots-runner",
        concurrency: 1,
        leaseMs: 30_000,
        heartbeatMs: 1_000,
        pollMs: 100,
        retryBackoffMs: 100,
        deltaWindowMs: 10,
      },
    });
    const names = ["a", "b", "c"];
    const ids: string[] = [];
    for (const name of names) {
      const request = {
        agent: "quick",
        input: { name },
        requestId: null,
        labels: {},
        timeoutMs: 60_000,
        maxAttempts: 1,
        webhook: null,
      };
      const inserted = await writer.insert(newTaskRow("t1", "1.0.0", request, "", new Date(Date.now() + ids.length)));
      ids.push(inserted!.task.task_id);
    }
    runner.start();
    try {
      // a ended and its ending is held: b starts in the one slot meanwhile.
      await until(
        async () => started.length,
        (n) => n >= 2,
        20_000,
      );
      expect(held.length).toBe(2);
      // a's and b's endings are both held: one ending in flight beyond the slot is all concurrency 1 allows.
      await new Promise((r) => setTimeout(r, 500));
      expect(started).toEqual(["a", "b"]);
      held.shift()!();
      await until(
        async () => started.length,
        (n) => n === 3,
        20_000,
      );
      await until(
        async () => held.length,
        (n) => n === 2,
        20_000,
      ); // b's and c's
      for (const release of held.splice(0)) release();
      for (const [i, taskId] of ids.entries()) {
        const task = await until(
          () => findTask(testDatabase.db.sql, { tenantId: "t1", taskId }),
          (t) => t?.state === "SUCCEEDED",
          20_000,
        );
        expect(task?.output).toEqual({ name: names[i] });
      }
    } finally {
      for (const release of held.splice(0)) release();
      await runner.stop(1_000);
    }
  });
});

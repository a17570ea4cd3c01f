// A store error inside the agent context is not the agent's failure: the attempt
// stops, the task is queued again and succeeds once the store answers, and no
// driver text (addresses, error codes) ever reaches the task. The runner runs on
// a real database; only the writer it is given fails on demand, as a dropped
// Postgres connection does. The attempt given back counts as retried for reason
// store_outage on the service's metrics.
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defineAgent } from "../../services/agent/agents/agent.js";
import { createAgentRegistry } from "../../services/agent/agents/registry.js";
import type { TaskRow } from "../../services/agent/model/task.js";
import { createServiceMetrics } from "../../services/agent/observe/service-metrics.js";
import { observeTaskWriter } from "../../services/agent/observe/task-observer.js";
import { createTaskRunner, type TaskRunner } from "../../services/agent/runner/task-runner.js";
import { findTask } from "../../services/agent/store/find-task.js";
import { createTaskWriter, type TaskWriter } from "../../services/agent/store/task-writer.js";
import { newTaskRow } from "../../services/agent/tasks/new-task.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { silentLogger } from "../../services/shared/log.js";
import { createLocalWakeupBus } from "../../services/shared/wakeup/bus.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { until } from "../support/until.js";

let testDb: TestDatabase;
let db: Database;
const runners: TaskRunner[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await openDatabase(testDb.url ? { url: testDb.url } : { dataDir: testDb.dataDir! });
});

afterAll(async () => {
  await Promise.all(runners.map((r) => r.stop(1000)));
  await db?.close();
  await testDb?.drop();
});

/** What postgres.js throws when the server is gone. */
function connectionRefused(): Error {
  return Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:54999"), {
    code: "ECONNREFUSED",
    address: "127.0.0.1",
    port: 54999,
  });
}

/** The real writer, except that its writes fail while `down.now` is true. */
function flakyWriter(writer: TaskWriter, down: { now: boolean; failed: number }): TaskWriter {
  const guard =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      if (down.now) {
        down.failed++;
        throw connectionRefused();
      }
      return fn(...args);
    };
  return {
    ...writer,
    changeHeld: guard(writer.changeHeld),
    change: guard(writer.change),
    extendLeases: guard(writer.extendLeases),
  };
}

describe("a store outage inside an attempt", () => {
  it("queues the task again instead of failing it, and the retry succeeds once the store is back", async () => {
    const down = { now: false, failed: 0 };
    let runs = 0;
    const agent = defineAgent<Record<string, never>, { runs: number }>({
      name: "outage-probe",
      version: "1.0.0",
      description: "Reports progress; the first run meets a store outage at its second step.",
      inputSchema: { type: "object" },
      outputSchema: { type: "object" },
      async run(_input, ctx) {
        runs++;
        await ctx.progress({ step: 1, totalSteps: 2 });
        if (runs === 1) down.now = true; // the database goes away mid-attempt
        // The agent wraps the error it gets, as agents do: still not its failure.
        await ctx.progress({ step: 2, totalSteps: 2 }).catch((err) => {
          throw new Error(`step 2 failed: ${(err as Error).message}`, { cause: err });
        });
        return { runs };
      },
    });
    const bus = createLocalWakeupBus();
    const realWriter = createTaskWriter({ sql: db.sql, bus });
    // Observed as the service observes its writer (service.ts).
    const registry = new Registry();
    const observed = observeTaskWriter(realWriter, createServiceMetrics({ registry, sql: db.sql, poolMax: 1 }));
    const runner = createTaskRunner({
      writer: flakyWriter(observed, down),
      registry: createAgentRegistry([agent]),
      bus,
      logger: silentLogger(),
      findTask: (key) => findTask(db.sql, key),
      options: {
        owner: "test-runner",
        concurrency: 2,
        leaseMs: 30_000,
        heartbeatMs: 100,
        pollMs: 100,
        retryBackoffMs: 100,
        deltaWindowMs: 10,
      },
    });
    runners.push(runner);

    const row = newTaskRow(
      "t1",
      "1.0.0",
      {
        agent: "outage-probe",
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
    const inserted = await realWriter.insert(row);
    const key = { tenantId: "t1", taskId: inserted!.task.task_id };
    runner.start();

    // The first attempt met the outage; while it lasts, the task stays RUNNING (never FAILED).
    await until(
      async () => down.failed,
      (n) => n >= 3,
      20_000,
    );
    const during = await findTask(db.sql, key);
    expect(during?.state).toBe("RUNNING");

    down.now = false; // the database is back
    const done = (await until(
      () => findTask(db.sql, key),
      (t) => t !== undefined && ["SUCCEEDED", "FAILED", "CANCELED"].includes(t.state),
      20_000,
    )) as TaskRow;
    expect(done.state).toBe("SUCCEEDED");
    expect(done.error).toBeNull();
    expect(done.output).toEqual({ runs: 2 });
    // Not charged: max_attempts is 1, and the outage did not use it up.
    expect(done.attempt).toBe(1);

    const events = await db.sql<{ kind: string; data: { message?: string; state?: string } }[]>`
      SELECT kind, data FROM task_events WHERE tenant_id = 't1' AND task_id = ${key.taskId} ORDER BY sequence
    `;
    const states = events.filter((e) => e.kind === "stateChange").map((e) => e.data.state);
    expect(states).toEqual([
      "TASK_STATE_QUEUED",
      "TASK_STATE_RUNNING",
      "TASK_STATE_QUEUED",
      "TASK_STATE_RUNNING",
      "TASK_STATE_SUCCEEDED",
    ]);
    const text = JSON.stringify(events);
    expect(text).toMatch(/task store was unavailable/);
    expect(text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|54999/);

    const retried = await registry.getSingleMetric("agentd_task_attempts_retried_total")?.get();
    expect(retried?.values).toEqual([{ labels: { agent: "outage-probe", reason: "store_outage" }, value: 1 }]);
  });
});

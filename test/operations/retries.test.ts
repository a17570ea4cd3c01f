// A runner killed mid-task, as in production: another replica's lease sweep
// finds the lease lost and queues the task for another attempt, and its
// /metrics says so (leases lost; attempts retried, reason lease_lost; the queue
// depth by agent). Also the database pool's gauges on the same scrape.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { type AgentdProcess, clientsFor, spawnAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let db: Database;
let key: string;
/** Serves the API and sweeps leases, but claims nothing (--concurrency 0). */
let sweeper: AgentdProcess;
/** The only replica that runs tasks; killed mid-task. */
let runner: AgentdProcess;

beforeAll(async () => {
  shared = await startSharedTestDatabase();
  db = await openDatabase({ url: shared.url, dataDir: "unused", maxConnections: 1 });
  await runMigrations(db.sql);
  key = (await createApiKey(db.sql, { tenantId: "ops", scopes: [...SCOPES] })).key;
  [sweeper, runner] = await Promise.all([
    spawnAgentd({ databaseUrl: shared.url, args: ["--concurrency", "0"], env: { AGENTD_DB_MAX_CONNECTIONS: "3" } }),
    spawnAgentd({ databaseUrl: shared.url }),
  ]);
});

afterAll(async () => {
  await Promise.all([sweeper?.kill("SIGKILL"), runner?.kill("SIGKILL")]);
  await db?.close();
  await shared?.close();
});

async function scrape(p: AgentdProcess): Promise<string> {
  const res = await fetch(`${p.url}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("a runner killed mid-task", () => {
  it("is found by another replica's sweep: lease lost, attempt retried for reason lease_lost", async () => {
    const client = clientsFor(sweeper.url, key);
    const { task } = await client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 1000, step_delay_ms: 100 }),
      maxAttempts: 3,
    });
    await until(
      () => client.tasks.getTask({ taskId: task!.id }),
      (r) => r.task?.state === TaskState.RUNNING,
      30_000,
    );
    await runner.kill("SIGKILL");
    // The lease (3 s in tests) runs out; the sweeper queues attempt 2, which nobody claims.
    const requeued = await until(
      () => client.tasks.getTask({ taskId: task!.id }),
      (r) => r.task?.state === TaskState.QUEUED && r.task.attempt === 2,
      30_000,
    );
    expect(requeued.task?.attempt).toBe(2);

    const text = await scrape(sweeper);
    expect(sample(text, "agentd_task_leases_lost_total")).toBe(1);
    expect(sample(text, 'agentd_task_attempts_retried_total{agent="simulate",reason="lease_lost"}')).toBe(1);
    expect(text).toMatch(/^# HELP agentd_task_attempts_retried_total .*store_outage.*shutdown/m);
    // Queue depth by agent, read from the database: the requeued task waits for a runner.
    expect(sample(text, 'agentd_tasks_queued{agent="simulate"}')).toBe(1);
    // The database pool: its size, and a ping that waits for a free connection.
    expect(sample(text, "agentd_db_pool_max_connections")).toBe(3);
    expect(sample(text, "agentd_db_up")).toBe(1);
    expect(sample(text, "agentd_db_ping_seconds")).toBeGreaterThanOrEqual(0);
  });
});

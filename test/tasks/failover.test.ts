// A killed process loses no work: leases expire, the sweeper requeues, another
// runner finishes. Real child processes on one database.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { type AgentdProcess, clientsFor, spawnAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { plain, value } from "../support/json.js";
import { until } from "../support/until.js";

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let db: Database;
let key: string;
const processes: AgentdProcess[] = [];

beforeAll(async () => {
  shared = await startSharedTestDatabase();
  db = await openDatabase({ url: shared.url, dataDir: "unused", maxConnections: 1 });
  await runMigrations(db.sql);
  key = (await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] })).key;
});

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  await db?.close();
  await shared?.close();
});

async function spawn(env: Record<string, string> = {}) {
  const p = await spawnAgentd({ databaseUrl: shared.url, env });
  processes.push(p);
  return p;
}

describe("a runner killed mid-task", () => {
  it("loses no task: after its lease expires the task completes on another runner, as attempt 2", async () => {
    const a = await spawn();
    const client = clientsFor(a.url, key);
    const { task } = await client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 4, step_delay_ms: 400 }),
    });
    await until(
      () => client.tasks.getTask({ taskId: task!.id }),
      (r) => r.task?.state === TaskState.RUNNING && (r.task.progress?.step ?? 0) >= 1,
      20_000,
    );
    await a.kill("SIGKILL");

    const b = await spawn();
    const clientB = clientsFor(b.url, key);
    const { task: done } = await until(
      () => clientB.tasks.getTask({ taskId: task!.id }),
      (r) => r.task?.state === TaskState.SUCCEEDED,
      20_000,
    );
    expect(done?.attempt).toBe(2);
    // The retried attempt resumed from its checkpoint rather than starting over.
    expect(plain<{ resumed_from_step: number }>(done?.output).resumed_from_step).toBeGreaterThanOrEqual(1);
    const { events } = await clientB.tasks.listTaskEvents({ taskId: task!.id, pageSize: 1000 });
    expect(events.some((e) => e.event.case === "log" && /lost/.test(e.event.value.message))).toBe(true);
    await b.kill("SIGTERM");
  });
});

describe("two service processes on one database", () => {
  it("never run the same attempt twice: every RUNNING in a task's log is a new attempt", async () => {
    const [a, b] = await Promise.all([spawn(), spawn()]);
    const client = clientsFor(a.url, key);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const { task } = await client.tasks.createTask({
        agent: "simulate",
        input: value({ steps: 2, step_delay_ms: 20 }),
        labels: { batch: "pair" },
      });
      ids.push(task!.id);
    }
    for (const id of ids) {
      await until(
        () => client.tasks.getTask({ taskId: id }),
        (r) => r.task?.state === TaskState.SUCCEEDED,
        20_000,
      );
    }
    for (const id of ids) {
      const { events } = await client.tasks.listTaskEvents({ taskId: id, pageSize: 1000 });
      const attempts = events.flatMap((e) =>
        e.event.case === "stateChange" && e.event.value.state === TaskState.RUNNING
          ? [e.event.value.task?.attempt]
          : [],
      );
      // Under heavy load a lease can expire and the task be retried; what must never
      // happen is two runs of the same attempt.
      expect(new Set(attempts).size).toBe(attempts.length);
    }
    await Promise.all([a.kill("SIGTERM"), b.kill("SIGTERM")]);
  });
});

describe("graceful shutdown", () => {
  it("SIGTERM hands a running task back to the queue; another runner finishes it", async () => {
    const a = await spawn({ AGENTD_SHUTDOWN_GRACE_MS: "200" });
    const client = clientsFor(a.url, key);
    const { task } = await client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 3, step_delay_ms: 500 }),
    });
    await until(
      () => client.tasks.getTask({ taskId: task!.id }),
      (r) => r.task?.state === TaskState.RUNNING,
      20_000,
    );
    expect(await a.kill("SIGTERM")).toBe(0);
    const [row] = await db.sql<
      { state: string; lease_owner: string | null }[]
    >`SELECT state, lease_owner FROM tasks WHERE task_id = ${task!.id}`;
    expect(row).toEqual({ state: "QUEUED", lease_owner: null });

    const b = await spawn();
    const clientB = clientsFor(b.url, key);
    const { task: done } = await until(
      () => clientB.tasks.getTask({ taskId: task!.id }),
      (r) => r.task?.state === TaskState.SUCCEEDED,
      20_000,
    );
    expect(done?.attempt).toBe(1);
    await b.kill("SIGTERM");
  });
});

describe("cancelling a task that runs in another process", () => {
  it("reaches the agent's AbortSignal there within a second", async () => {
    const [a, b] = await Promise.all([spawn(), spawn({ AGENTD_RUNNER_CONCURRENCY: "0" })]);
    const onA = clientsFor(a.url, key);
    const onB = clientsFor(b.url, key);
    const { task } = await onA.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 1, step_delay_ms: 60_000 }),
    });
    await until(
      () => onB.tasks.getTask({ taskId: task!.id }),
      (r) => r.task?.state === TaskState.RUNNING,
      20_000,
    );
    const cancelledAt = Date.now();
    const { task: canceled } = await onB.tasks.cancelTask({ taskId: task!.id });
    expect(canceled?.state).toBe(TaskState.CANCELED);
    const ended = await until(
      async () => a.logs.find((l) => l.msg === "attempt ended" && l.taskId === task!.id),
      (l) => l !== undefined,
      5000,
    );
    // The runner on A logged the attempt's end after its agent stopped on the signal.
    expect(ended?.stoppedBy).toBeDefined();
    expect(Date.parse(ended!.time as string) - cancelledAt).toBeLessThan(1000);
    await Promise.all([a.kill("SIGTERM"), b.kill("SIGTERM")]);
  });
});

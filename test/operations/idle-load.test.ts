// Idle cost (issue 13): an `agentd serve` with nothing to do must not keep its
// database busy. Wake-ups carry the work; the poll backstops, sweeps, health
// check and listener canary together stay near one statement per second. And the
// end of a task, a unary Run's or a queued one's, does not wake the runner's claim
// loop into statements of its own.
// Postgres only: the embedded database has no server of its own to load.
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/agentd/v1/agent_service_pb.js";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { TaskService } from "../../gen/agentd/v1/task_service_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { loadConfig } from "../../services/shared/config.js";
import { openDatabase } from "../../services/shared/db/database.js";
import { type AgentdProcess, spawnAgentd, transportFor } from "../support/agentd.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { value } from "../support/json.js";
import { type StatementCounter, startStatementCounter } from "../support/statement-counter.js";

const postgresMode = Boolean(process.env.DATABASE_URL);
const defaults = loadConfig({}, {}, {});

let db: TestDatabase | undefined;
let counter: StatementCounter | undefined;
let agentd: AgentdProcess | undefined;
let key = "";
// The runner's claim on an empty queue starts with this peek (claim-tasks.ts).
const peeks = () => counter!.texts().get("SELECT EXISTS (SELECT 1 FROM tasks WHERE") ?? 0;
beforeAll(async () => {
  if (!postgresMode) return;
  db = await createTestDatabase();
  const admin = await openDatabase({ url: db.url!, maxConnections: 1 });
  key = (await createApiKey(admin.sql, { tenantId: "t1", scopes: [...SCOPES] })).key;
  await admin.close();
  counter = await startStatementCounter(db.url!);
  // Default intervals, not the fast ones the other process tests use.
  agentd = await spawnAgentd({
    databaseUrl: counter.url,
    env: {
      AGENTD_LEASE_MS: String(defaults.leaseMs),
      AGENTD_HEARTBEAT_MS: String(defaults.heartbeatMs),
      AGENTD_POLL_MS: String(defaults.pollMs),
      AGENTD_RETRY_BACKOFF_MS: String(defaults.retryBackoffMs),
    },
  });
}, 60_000);
afterAll(async () => {
  await agentd?.kill("SIGTERM");
  await counter?.close();
  await db?.drop();
});

describe.skipIf(!postgresMode)("an idle agentd serve", () => {
  it("sends at most about a statement per second to Postgres (bound: 2/s over 20 s)", async () => {
    await new Promise((r) => setTimeout(r, 3000)); // start-up work done
    const before = counter!.count();
    await new Promise((r) => setTimeout(r, 20_000));
    const perSecond = (counter!.count() - before) / 20;
    expect(perSecond, JSON.stringify(Object.fromEntries(counter!.texts()))).toBeLessThanOrEqual(2);
  }, 60_000);
});

// The same process, after the idle test: it has claimed nothing, so each claim on an empty
// queue would begin with a peek.
describe.skipIf(!postgresMode)("an agentd serve given one task at a time", () => {
  it("runs unary Runs one after another without a claim statement for each (bound: one per second)", async () => {
    const agents = createClient(AgentService, transportFor(agentd!.url, "grpc", key));
    const before = peeks();
    const started = performance.now();
    const runs = 40;
    for (let i = 0; i < runs; i++) {
      const { task } = await agents.run({ agent: "simulate", input: value({ steps: 0 }) });
      expect(task?.state).toBe(TaskState.SUCCEEDED);
    }
    const seconds = (performance.now() - started) / 1000;
    // Each Run's end used to wake the claim loop into a peek, twice: 80 here before. The poll
    // and the sweeps still peek on their own schedule, every 1.6–2.5 s at the defaults.
    expect(peeks() - before).toBeLessThanOrEqual(2 + Math.ceil(seconds));
  }, 60_000);

  it("runs tasks created one after another without peeks at each one's end (bound: one per second)", async () => {
    const tasks = createClient(TaskService, transportFor(agentd!.url, "grpc", key));
    const before = peeks();
    const started = performance.now();
    for (let i = 0; i < 20; i++) {
      const { task } = await tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) });
      const done = await tasks.waitTask({ taskId: task!.id, timeout: { seconds: 30n } });
      expect(done.task?.state).toBe(TaskState.SUCCEEDED);
    }
    const seconds = (performance.now() - started) / 1000;
    // Each task's end woke the claim loop into two peeks on the then empty queue: 40 here before.
    expect(peeks() - before).toBeLessThanOrEqual(2 + Math.ceil(seconds));
  }, 60_000);
});

// The same process again. A WaitTask long poll on a task that stands still reads the task when it
// starts and when it answers; in between, the hints and one poll query shared by every wait of the
// process stand in for reading it again (tasks/task-waiters.ts).
describe.skipIf(!postgresMode)("an agentd serve with long polls waiting on tasks that do not change", () => {
  it("reads each task twice per WaitTask, not at every poll interval (bound: 2 reads per call, plus 5)", async () => {
    const tasks = createClient(TaskService, transportFor(agentd!.url, "grpc", key));
    const reads = () => counter!.texts().get("SELECT * FROM tasks WHERE tenant_id = $1") ?? 0;
    // Running, and quiet for longer than the waits: one step that takes 60 s.
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const { task } = await tasks.createTask({ agent: "simulate", input: value({ steps: 1, step_delay_ms: 60_000 }) });
      ids.push(task!.id);
    }
    try {
      const before = reads();
      const polls = () => counter!.texts().get("SELECT t.tenant_id, t.task_id, t.last_se") ?? 0;
      const pollsBefore = polls();
      const started = performance.now();
      const answers = await Promise.all(ids.map((taskId) => tasks.waitTask({ taskId, timeout: { seconds: 8n } })));
      const seconds = (performance.now() - started) / 1000;
      for (const { task } of answers) expect([TaskState.QUEUED, TaskState.RUNNING]).toContain(task?.state);
      // Each wait read its task every poll interval (2 s) before: about 150 reads here.
      expect(reads() - before).toBeLessThanOrEqual(2 * ids.length + 5);
      // One query per poll interval for all thirty waits.
      expect(polls() - pollsBefore).toBeLessThanOrEqual(2 + Math.ceil(seconds / (defaults.pollMs / 1000)));
    } finally {
      await Promise.all(ids.map((taskId) => tasks.cancelTask({ taskId })));
    }
  }, 60_000);
});

// Streams across processes on one database: a task runs on A and is watched live on B;
// a task waiting for input survives its runner's death, and resumes on a new process
// from its checkpoint with the answer. Real `agentd serve` child processes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TaskEvent, TaskState } from "../../gen/agentd/v1/task_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { type AgentdProcess, clientsFor, spawnAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { plain, value } from "../support/json.js";
import { asJson, drain, listAllEvents, stateOf, waitForState } from "./support.js";

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let db: Database;
let key: string;
let a: AgentdProcess;
let b: AgentdProcess;
const processes: AgentdProcess[] = [];

beforeAll(async () => {
  shared = await startSharedTestDatabase();
  db = await openDatabase({ url: shared.url, dataDir: "unused", maxConnections: 1 });
  key = (await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] })).key;
  // A runs tasks; B only serves the API (runner concurrency 0), so whatever B streams ran elsewhere.
  [a, b] = await Promise.all([
    spawnAgentd({ databaseUrl: shared.url }),
    spawnAgentd({ databaseUrl: shared.url, env: { AGENTD_RUNNER_CONCURRENCY: "0" } }),
  ]);
  processes.push(a, b);
});

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  await db?.close();
  await shared?.close();
});

const millis = (e: TaskEvent) => Number(e.time!.seconds) * 1000 + e.time!.nanos / 1e6;

describe("two service processes on one database", () => {
  it("a task running on A is watched live on B: every event, in order, as it happens", async () => {
    const onA = clientsFor(a.url, key);
    const onB = clientsFor(b.url, key, "grpc");
    const { task } = await onA.tasks.createTask({ agent: "simulate", input: value({ steps: 8, step_delay_ms: 100 }) });
    const lags: number[] = [];
    const { events } = await drain(onB.tasks.watchTask({ taskId: task!.id }), {
      onEvent: (e) => lags.push(Date.now() - millis(e)),
    });
    expect(asJson(events)).toEqual(asJson(await listAllEvents(onA, task!.id)));
    expect(stateOf(events.at(-1))).toBe(TaskState.SUCCEEDED);
    // Live: B hears of A's writes through LISTEN/NOTIFY (under the embedded database, through its
    // bounded poll of 200 ms): each progress event reaches the watcher on B well within a second.
    const progressLags = lags.filter((_, i) => events[i]!.event.case === "progress");
    expect(progressLags).toHaveLength(8);
    expect(Math.max(...progressLags)).toBeLessThan(shared.mode === "postgres" ? 500 : 1000);
  });
});

describe("INPUT_REQUIRED survives a restart", () => {
  it("the runner dies while the task waits; a new process resumes the agent from its checkpoint with the answer", async () => {
    const onA = clientsFor(a.url, key);
    const { task } = await onA.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 2, ask: [{ prompt: "Ship it?", schema: { type: "boolean" } }], output: "shipped" }),
    });
    const paused = await waitForState(onA, task!.id, TaskState.INPUT_REQUIRED);
    expect(paused.inputRequest?.prompt).toBe("Ship it?");
    // B watches across the restart.
    const onB = clientsFor(b.url, key);
    const watching = drain(onB.tasks.watchTask({ taskId: task!.id }));

    await a.kill("SIGKILL");
    const a2 = await spawnAgentd({ databaseUrl: shared.url });
    processes.push(a2);
    const onA2 = clientsFor(a2.url, key);
    expect((await onA2.tasks.getTask({ taskId: task!.id })).task?.state).toBe(TaskState.INPUT_REQUIRED);

    const answered = await onA2.tasks.provideInput({ taskId: task!.id, value: value(true), requestId: "ship-1" });
    expect(answered.task?.state).toBe(TaskState.QUEUED);
    const done = await waitForState(onA2, task!.id, TaskState.SUCCEEDED);
    expect(plain(done.output)).toEqual({
      steps_completed: 2,
      resumed_from_step: 0,
      answers: [true],
      deltas_sent: 0,
      output: "shipped",
    });
    // Resuming after input is not a retry.
    expect(done.attempt).toBe(1);

    const { events } = await watching;
    expect(asJson(events)).toEqual(asJson(await listAllEvents(onA2, task!.id)));
    // The question was asked once: the resumed run did not ask it again.
    expect(events.filter((e) => e.event.case === "inputRequest")).toHaveLength(1);
  });
});

// Pattern 1: the synchronous Run, its cancellation rules, and idempotency keys.
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { errorInfo, expectCode } from "../support/expect.js";
import { plain, value } from "../support/json.js";
import { until } from "../support/until.js";

let agentd: TestAgentd;
beforeAll(async () => {
  // concurrency 0: no runner claims queued tasks, so every Run below provably ran in the receiving replica.
  agentd = await startAgentd({ config: { runnerConcurrency: 0 } });
});
afterAll(async () => {
  await agentd?.close();
});

describe("Run", () => {
  it("runs the agent in the receiving replica and returns the finished task, recorded with its events", async () => {
    const text =
      "The harbour town woke early. Fishing boats left before dawn, as they had for centuries. " +
      "Tourism now brings more money to the town than fishing does. " +
      "Still, the fishing fleet remains the heart of the town's identity and its festivals. " +
      "A new ferry line connects the town to the mainland twice a day.";
    const { task } = await agentd.client.agents.run({ agent: "summarize", input: value({ text, max_words: 30 }) });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    const output = plain<{ summary: string; word_count: number }>(task?.output);
    expect(output.summary.length).toBeGreaterThan(0);
    expect(output.word_count).toBeLessThanOrEqual(30);
    expect(text).toContain(output.summary.split(". ")[0]!.replace(/\.$/, ""));

    const { events } = await agentd.client.tasks.listTaskEvents({ taskId: task!.id });
    const states = events
      .filter((e) => e.event.case === "stateChange")
      .map((e) => (e.event.value as { state: TaskState }).state);
    expect(states).toEqual([TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCEEDED]);
    expect(events.some((e) => e.event.case === "progress")).toBe(true);
  });

  it("returns a failed agent as a task in FAILED, not as an RPC error", async () => {
    const { task } = await agentd.client.agents.run({ agent: "simulate", input: value({ steps: 2, fail_at_step: 1 }) });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error?.code).toBe("SIMULATED_FAILURE");
  });

  it("cancels the task when the caller cancels the call", async () => {
    const abort = new AbortController();
    const call = agentd.client.agents.run(
      { agent: "simulate", input: value({ steps: 1, step_delay_ms: 30_000 }), labels: { case: "caller-cancel" } },
      { signal: abort.signal },
    );
    const running = await until(
      () => agentd.client.tasks.listTasks({ labels: { case: "caller-cancel" } }),
      (r) => r.tasks[0]?.state === TaskState.RUNNING,
    );
    abort.abort();
    await expectCode(call, Code.Canceled);
    const after = await until(
      () => agentd.client.tasks.getTask({ taskId: running.tasks[0]!.id }),
      (r) => r.task?.state === TaskState.CANCELED,
    );
    expect(after.task?.state).toBe(TaskState.CANCELED);
  });

  it("cancels the task when the call's deadline passes", async () => {
    await expectCode(
      agentd.client.agents.run(
        { agent: "simulate", input: value({ steps: 1, step_delay_ms: 30_000 }), labels: { case: "deadline" } },
        { timeoutMs: 400 },
      ),
      Code.DeadlineExceeded,
    );
    const after = await until(
      () => agentd.client.tasks.listTasks({ labels: { case: "deadline" } }),
      (r) => r.tasks[0]?.state === TaskState.CANCELED,
    );
    expect(after.tasks[0]?.state).toBe(TaskState.CANCELED);
  });

  it("with a request_id, a cancelled call leaves the task running and a retry attaches to it", async () => {
    const request = { agent: "simulate", input: value({ steps: 2, step_delay_ms: 400 }), requestId: "run-retry-1" };
    await expectCode(agentd.client.agents.run(request, { timeoutMs: 200 }), Code.DeadlineExceeded);
    const { tasks } = await agentd.client.tasks.listTasks({});
    const first = tasks.find((t) => t.requestId === "run-retry-1")!;
    expect([TaskState.RUNNING, TaskState.SUCCEEDED]).toContain(first.state);

    const { task } = await agentd.client.agents.run(request);
    expect(task?.id).toBe(first.id);
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    expect(task?.attempt).toBe(1);
  });
});

describe("idempotency", () => {
  it("the same request_id and request returns the same task; a different request is ALREADY_EXISTS", async () => {
    const request = { agent: "simulate", input: value({ steps: 1 }), requestId: "idem-1", labels: { a: "1" } };
    const a = await agentd.client.tasks.createTask(request);
    const b = await agentd.client.tasks.createTask(request);
    expect(b.task?.id).toBe(a.task?.id);

    const err = await expectCode(
      agentd.client.tasks.createTask({ ...request, input: value({ steps: 2 }) }),
      Code.AlreadyExists,
    );
    expect(errorInfo(err)?.reason).toBe("REQUEST_ID_REUSED");
    expect(err.message).toContain(a.task!.id);

    // The key is per tenant: another tenant gets its own task.
    const other = agentd.clients(await agentd.createKey("idem-other"));
    const c = await other.tasks.createTask(request);
    expect(c.task?.id).not.toBe(a.task?.id);
  });

  it("20 concurrent duplicates make exactly one task", async () => {
    const request = { agent: "simulate", input: value({ steps: 0 }), requestId: "idem-concurrent" };
    const results = await Promise.all(Array.from({ length: 20 }, () => agentd.client.tasks.createTask(request)));
    expect(new Set(results.map((r) => r.task?.id)).size).toBe(1);
    const [{ count }] = (await agentd.db.sql`
      SELECT count(*)::int AS count FROM tasks WHERE tenant_id = 't1' AND request_id = 'idem-concurrent'
    `) as unknown as [{ count: number }];
    expect(count).toBe(1);
  });

  it("a Run and a CreateTask with the same request_id conflict", async () => {
    await agentd.client.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }), requestId: "idem-kind" });
    await expectCode(
      agentd.client.agents.run({ agent: "simulate", input: value({ steps: 0 }), requestId: "idem-kind" }),
      Code.AlreadyExists,
    );
  });
});

// Pattern 2: create a durable task, poll it, wait for it, list it, cancel and delete it.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import type { AgentDefinition } from "../../services/agent/agents/agent.js";
import { findTask } from "../../services/agent/store/find-task.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { expectCode } from "../support/expect.js";
import { plain, value } from "../support/json.js";

/** Resolves when an agent of this name sees its abort signal. */
let sawAbort: (() => void) | undefined;
const waitsForAbort: AgentDefinition = {
  name: "waits-for-abort",
  version: "1.0.0",
  description: "Runs until its signal fires, and tells the test it saw it.",
  inputSchema: { type: "object" },
  outputSchema: {},
  run(_input, ctx) {
    return new Promise((_resolve, reject) => {
      ctx.signal.addEventListener("abort", () => {
        sawAbort?.();
        reject(ctx.signal.reason);
      });
    });
  },
};

let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd({ agents: [waitsForAbort] });
});
afterAll(async () => {
  await agentd?.close();
});

describe("CreateTask then WaitTask", () => {
  it("returns at once with the task QUEUED, and WaitTask returns it SUCCEEDED with its output", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 3, step_delay_ms: 20, output: { hello: "world" } }),
      labels: { team: "a" },
    });
    expect(task?.state).toBe(TaskState.QUEUED);
    expect(task?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(task?.attempt).toBe(0);
    expect(task?.maxAttempts).toBe(3);

    const waited = await agentd.client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 10n } });
    expect(waited.task?.state).toBe(TaskState.SUCCEEDED);
    expect(plain(waited.task?.output)).toMatchObject({ steps_completed: 3, output: { hello: "world" } });
    expect(waited.task?.progress?.step).toBe(3);
    expect(waited.task?.attempt).toBe(1);
    expect(waited.task?.startTime).toBeDefined();
    expect(waited.task?.endTime).toBeDefined();

    // Stored state matches what the API says.
    const stored = await findTask(agentd.db.sql, { tenantId: "t1", taskId: task!.id });
    expect(stored?.state).toBe("SUCCEEDED");
    expect(stored?.lease_owner).toBeNull();

    const got = await agentd.client.tasks.getTask({ taskId: task!.id });
    expect(got.task).toEqual(waited.task);
  });

  it("WaitTask returns the task as it is when its timeout passes first", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 1, step_delay_ms: 5000 }),
    });
    const started = Date.now();
    const waited = await agentd.client.tasks.waitTask({ taskId: task!.id, timeout: { nanos: 300_000_000 } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect([TaskState.QUEUED, TaskState.RUNNING]).toContain(waited.task?.state);
    await agentd.client.tasks.cancelTask({ taskId: task!.id });
  });

  it("a failing agent is a successful call that returns the task FAILED with a TaskError", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 3, fail_at_step: 2, fail_message: "boom" }),
    });
    const { task: done } = await agentd.client.tasks.waitTask({ taskId: task!.id });
    expect(done?.state).toBe(TaskState.FAILED);
    expect(done?.error).toMatchObject({ code: "SIMULATED_FAILURE", message: "boom" });
  });

  it("a task past its timeout fails with TIMEOUT", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 1, step_delay_ms: 10_000 }),
      timeout: { nanos: 200_000_000 },
    });
    const { task: done } = await agentd.client.tasks.waitTask({ taskId: task!.id });
    expect(done?.state).toBe(TaskState.FAILED);
    expect(done?.error?.code).toBe("TIMEOUT");
  });

  it("the event log starts with QUEUED and ends with the terminal state, gapless", async () => {
    const { task } = await agentd.client.tasks.createTask({ agent: "simulate", input: value({ steps: 2 }) });
    const { task: done } = await agentd.client.tasks.waitTask({ taskId: task!.id });
    const { events, nextPageToken } = await agentd.client.tasks.listTaskEvents({ taskId: task!.id });
    expect(nextPageToken).toBe("");
    expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
    expect(BigInt(events.length)).toBe(done!.lastSequence);
    expect(events[0]?.event.case).toBe("stateChange");
    expect(events[0]?.event.value).toMatchObject({ state: TaskState.QUEUED });
    const last = events.at(-1)!;
    expect(last.event.case).toBe("stateChange");
    expect(last.event.value).toMatchObject({ state: TaskState.SUCCEEDED });
    expect(events.filter((e) => e.event.case === "progress")).toHaveLength(2);

    const page1 = await agentd.client.tasks.listTaskEvents({ taskId: task!.id, pageSize: 2 });
    expect(page1.events).toHaveLength(2);
    const page2 = await agentd.client.tasks.listTaskEvents({
      taskId: task!.id,
      pageSize: 2,
      pageToken: page1.nextPageToken,
    });
    expect(page2.events[0]?.sequence).toBe(3n);
    const after = await agentd.client.tasks.listTaskEvents({
      taskId: task!.id,
      afterSequence: BigInt(events.length - 1),
    });
    expect(after.events.map((e) => e.sequence)).toEqual([BigInt(events.length)]);
  });
});

describe("CancelTask", () => {
  it("reaches the running agent's AbortSignal within a second and records CANCELED", async () => {
    const aborted = new Promise<void>((resolve) => {
      sawAbort = resolve;
    });
    const { task } = await agentd.client.tasks.createTask({ agent: "waits-for-abort" });
    for (let i = 0; i < 50; i++) {
      const { task: t } = await agentd.client.tasks.getTask({ taskId: task!.id });
      if (t?.state === TaskState.RUNNING) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const started = Date.now();
    const { task: canceled } = await agentd.client.tasks.cancelTask({ taskId: task!.id });
    expect(canceled?.state).toBe(TaskState.CANCELED);
    await aborted;
    expect(Date.now() - started).toBeLessThan(1000);

    // Idempotent.
    const again = await agentd.client.tasks.cancelTask({ taskId: task!.id });
    expect(again.task?.state).toBe(TaskState.CANCELED);
    expect(again.task?.lastSequence).toBe(canceled?.lastSequence);
  });

  it("a task that ignores the signal is still CANCELED, and its late result is discarded", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ hang: true, hang_ms: 600, output: "late" }),
    });
    for (let i = 0; i < 50; i++) {
      const { task: t } = await agentd.client.tasks.getTask({ taskId: task!.id });
      if (t?.state === TaskState.RUNNING) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await agentd.client.tasks.cancelTask({ taskId: task!.id });
    await new Promise((r) => setTimeout(r, 1000));
    const { task: after } = await agentd.client.tasks.getTask({ taskId: task!.id });
    expect(after?.state).toBe(TaskState.CANCELED);
    expect(after?.output).toBeUndefined();
  });

  it("cancels a queued task before any runner takes it", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 1, step_delay_ms: 2000 }),
    });
    const { task: canceled } = await agentd.client.tasks.cancelTask({ taskId: task!.id });
    expect(canceled?.state).toBe(TaskState.CANCELED);
  });
});

describe("ListTasks", () => {
  it("lists newest first, filters by state, agent and labels, and pages with opaque tokens", async () => {
    const tenantKey = await agentd.createKey("list-tenant");
    const client = agentd.clients(tenantKey);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { task } = await client.tasks.createTask({
        agent: "simulate",
        input: value({ steps: 0 }),
        labels: { batch: "b1", parity: i % 2 === 0 ? "even" : "odd" },
      });
      ids.push(task!.id);
    }
    for (const id of ids) await client.tasks.waitTask({ taskId: id });

    const all = await client.tasks.listTasks({});
    expect(all.tasks.map((t) => t.id)).toEqual([...ids].reverse());

    const even = await client.tasks.listTasks({ labels: { parity: "even" } });
    expect(even.tasks).toHaveLength(3);
    const succeeded = await client.tasks.listTasks({ states: [TaskState.SUCCEEDED], agent: "simulate" });
    expect(succeeded.tasks).toHaveLength(5);
    const failed = await client.tasks.listTasks({ states: [TaskState.FAILED] });
    expect(failed.tasks).toHaveLength(0);
    const otherAgent = await client.tasks.listTasks({ agent: "summarize" });
    expect(otherAgent.tasks).toHaveLength(0);

    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await client.tasks.listTasks({ pageSize: 2, pageToken });
      seen.push(...page.tasks.map((t) => t.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual([...ids].reverse());

    const first = await client.tasks.listTasks({ pageSize: 2 });
    await expectCode(
      client.tasks.listTasks({ pageSize: 2, pageToken: first.nextPageToken, agent: "x" }),
      Code.InvalidArgument,
    );
    await expectCode(client.tasks.listTasks({ pageToken: "garbage!" }), Code.InvalidArgument);
    await expectCode(client.tasks.listTasks({ pageSize: -1 }), Code.InvalidArgument);
  });
});

describe("DeleteTask", () => {
  it("deletes a terminal task and refuses one that has not ended", async () => {
    const running = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 1, step_delay_ms: 3000 }),
    });
    const err = await expectCode(agentd.client.tasks.deleteTask({ taskId: running.task!.id }), Code.FailedPrecondition);
    expect(err.message).toMatch(/only a task that has ended/);
    await agentd.client.tasks.cancelTask({ taskId: running.task!.id });
    await agentd.client.tasks.deleteTask({ taskId: running.task!.id });
    await expectCode(agentd.client.tasks.getTask({ taskId: running.task!.id }), Code.NotFound);
    await expectCode(agentd.client.tasks.listTaskEvents({ taskId: running.task!.id }), Code.NotFound);
    await expectCode(agentd.client.tasks.deleteTask({ taskId: running.task!.id }), Code.NotFound);
  });
});

describe("unknown ids", () => {
  it.each([
    ["an unknown uuid", "0190a9f4-0000-7000-8000-000000000000"],
    ["not a uuid", "nope"],
  ])("%s is NOT_FOUND on every task RPC", async (_what, taskId) => {
    const t = agentd.client.tasks;
    await expectCode(t.getTask({ taskId }), Code.NotFound);
    await expectCode(t.waitTask({ taskId }), Code.NotFound);
    await expectCode(t.cancelTask({ taskId }), Code.NotFound);
    await expectCode(t.deleteTask({ taskId }), Code.NotFound);
    await expectCode(t.listTaskEvents({ taskId }), Code.NotFound);
  });

  it("an empty task id is INVALID_ARGUMENT", async () => {
    const err = await expectCode(agentd.client.tasks.getTask({ taskId: "" }), Code.InvalidArgument);
    expect(err).toBeInstanceOf(ConnectError);
  });
});

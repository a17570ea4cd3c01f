// Converse (bidirectional) and human-in-the-loop input: a real HTTP/2 bidi stream from
// @grpc/grpc-js; ProvideInput validation, idempotency and expiry.
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ConverseRequest,
  ConverseRequestSchema,
  type ConverseResponse,
} from "../../gen/agentd/v1/agent_service_pb.js";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { findTask } from "../../services/agent/store/find-task.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { badRequest, errorInfo, expectCode } from "../support/expect.js";
import { plain, value } from "../support/json.js";
import { converse, grpcAgentClient, isState, toValue } from "./grpc-client.js";
import { listAllEvents, waitForState } from "./support.js";

let agentd: TestAgentd;
let grpcClient: ReturnType<typeof grpcAgentClient>;
beforeAll(async () => {
  // A slow sweep (1 s), so that an answer can arrive after its request expired but before the sweep.
  agentd = await startAgentd({ config: { pollMs: 1000 } });
  grpcClient = grpcAgentClient(agentd.url);
});
afterAll(async () => {
  grpcClient?.close();
  await agentd?.close();
});

const twoQuestions = [
  { prompt: "What is your name?", schema: { type: "string", minLength: 1 } },
  { prompt: "Approve?", schema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] } },
];

async function pausedTask(input: object) {
  const { task } = await agentd.client.tasks.createTask({ agent: "simulate", input: value(input) });
  return waitForState(agentd.client, task!.id, TaskState.INPUT_REQUIRED);
}

const stored = (taskId: string) => findTask(agentd.db.sql, { tenantId: "t1", taskId });

/** Client messages for the Connect client's Converse: pushed one by one, ended on demand. */
function pipe() {
  const queue: ConverseRequest[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  return {
    push(msg: Parameters<typeof create<typeof ConverseRequestSchema>>[1]) {
      queue.push(create(ConverseRequestSchema, msg));
      wake?.();
    },
    end() {
      closed = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (closed) return;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
    },
  };
}

/** Reads a Connect conversation until `stop` says so (or it ends); returns what came. */
async function readUntil(
  it: AsyncIterator<ConverseResponse>,
  stop: (r: ConverseResponse) => boolean,
): Promise<ConverseResponse[]> {
  const seen: ConverseResponse[] = [];
  for (let r = await it.next(); !r.done; r = await it.next()) {
    seen.push(r.value);
    if (stop(r.value)) break;
  }
  return seen;
}

describe("Converse over grpc-js (HTTP/2 bidi)", () => {
  it("start, answer two input requests (one wrong answer refused in between), then cancel", async () => {
    const call = converse(grpcClient, agentd.key);
    call.write({
      start: { agent: "simulate", input: toValue({ ask: twoQuestions, steps: 1, step_delay_ms: 60_000 }) },
    });
    const first = await call.waitFor((r) => r.event !== undefined);
    const taskId = first.event!.stateChange!.task.id;
    expect(first.event!.sequence).toBe("1");

    const q1 = await call.waitFor((r) => r.event?.event === "inputRequest");
    expect(q1.event!.inputRequest!.prompt).toBe("What is your name?");
    await call.waitFor(isState("INPUT_REQUIRED"));
    call.write({ input: { value: toValue("Ada"), requestId: "answer-1" } });
    await call.waitFor(isState("QUEUED"));
    const q2 = await call.waitFor((r) => r.event?.event === "inputRequest");
    expect(q2.event!.inputRequest!.prompt).toBe("Approve?");
    await call.waitFor(isState("INPUT_REQUIRED"));

    // A wrong answer is refused; the conversation and the task go on.
    call.write({ input: { value: toValue({ ok: "yes" }) } });
    const refused = await call.waitFor((r) => r.rejection !== undefined);
    expect(refused.rejection).toMatchObject({ code: "INVALID_ARGUMENT", reason: "ANSWER_SCHEMA_VIOLATION" });
    expect(refused.rejection!.message).toContain("input.value.ok");
    expect(refused.rejection!.fieldViolations?.map((v) => v.field)).toEqual(["input.value.ok"]);
    expect((await stored(taskId))?.state).toBe("INPUT_REQUIRED");

    call.write({ input: { value: toValue({ ok: true }), requestId: "answer-2" } });
    await call.waitFor(isState("RUNNING"));
    // No question is pending now: refused, nothing changes.
    call.write({ input: { value: toValue("again") } });
    expect((await call.waitFor((r) => r.rejection !== undefined)).rejection).toMatchObject({
      code: "FAILED_PRECONDITION",
      reason: "TASK_NOT_WAITING_FOR_INPUT",
    });

    call.write({ cancel: {} });
    await call.waitFor(isState("CANCELED"));
    // The server ends the call after the terminal event.
    expect((await call.status).code).toBe(grpc.status.OK);
    call.end();

    const events = call.all.flatMap((r) => (r.event ? [r.event] : []));
    expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
    expect(events.length).toBe((await listAllEvents(agentd.client, taskId)).length);
    const row = await stored(taskId);
    expect(row?.state).toBe("CANCELED");
    // The agent got both answers, in order (its checkpoint holds them).
    expect(row?.checkpoint).toMatchObject({ asked: 2, answers: ["Ada", { ok: true }] });
    expect(row?.input_answer_ids).toEqual(["answer-1", "answer-2"]);
  });

  it("attach to an existing task: replays from after_sequence, answers, and follows it to the end", async () => {
    const paused = await pausedTask({ ask: [twoQuestions[0]], steps: 2, output: "done" });
    const call = converse(grpcClient, agentd.key);
    call.write({ attach: { taskId: paused.id, afterSequence: "2" } });
    const replayed = await call.waitFor((r) => r.event !== undefined);
    expect(replayed.event!.sequence).toBe("3");
    await call.waitFor(isState("INPUT_REQUIRED"));
    call.write({ input: { value: toValue("Grace") } });
    await call.waitFor(isState("SUCCEEDED"));
    expect((await call.status).code).toBe(grpc.status.OK);
    call.end();
    const events = call.all.flatMap((r) => (r.event ? [r.event] : []));
    const log = await listAllEvents(agentd.client, paused.id);
    expect(events.map((e) => e.sequence)).toEqual(log.slice(2).map((e) => String(e.sequence)));
    const { task } = await agentd.client.tasks.getTask({ taskId: paused.id });
    expect(plain(task?.output)).toMatchObject({ answers: ["Grace"], steps_completed: 2, output: "done" });
  });

  it("half-close ends the conversation and leaves the task as it is", async () => {
    const paused = await pausedTask({ ask: [twoQuestions[0]] });
    const call = converse(grpcClient, agentd.key);
    call.write({ attach: { taskId: paused.id } });
    await call.waitFor(isState("INPUT_REQUIRED"));
    call.end();
    expect((await call.status).code).toBe(grpc.status.OK);
    const row = await stored(paused.id);
    expect(row?.state).toBe("INPUT_REQUIRED");
    expect(Number(row?.last_sequence)).toBe(Number(paused.lastSequence));
    await agentd.client.tasks.cancelTask({ taskId: paused.id });
  });
});

describe("Converse: half-close ends sending, not the conversation", () => {
  it("start + half-close streams the task to its end: task id, events, terminal state, then OK", async () => {
    const call = converse(grpcClient, agentd.key);
    call.write({ start: { agent: "simulate", input: toValue({ steps: 3, step_delay_ms: 20 }) } });
    call.end();
    const status = await call.status;
    expect(status.code).toBe(grpc.status.OK);
    const events = call.all.filter((r) => r.event).map((r) => r.event!);
    expect(events.length).toBeGreaterThan(2);
    const taskId = events[0]!.taskId;
    expect(taskId).toMatch(/[0-9a-f-]{36}/);
    expect(events.at(-1)?.stateChange?.state).toBe("TASK_STATE_SUCCEEDED");
    const row = await stored(taskId);
    expect(row?.state).toBe("SUCCEEDED");
    expect(events.map((e) => Number(e.sequence))).toEqual(
      Array.from({ length: Number(row?.last_sequence) }, (_, i) => i + 1),
    );
  });

  it("start + half-close on a task that asks for input ends once INPUT_REQUIRED is sent; the task waits", async () => {
    const call = converse(grpcClient, agentd.key);
    call.write({ start: { agent: "simulate", input: toValue({ ask: [twoQuestions[0]], steps: 1 }) } });
    call.end();
    expect((await call.status).code).toBe(grpc.status.OK);
    const last = call.all.filter((r) => r.event).at(-1)!.event!;
    expect(last.stateChange?.state).toBe("TASK_STATE_INPUT_REQUIRED");
    const row = await stored(last.taskId);
    expect(row?.state).toBe("INPUT_REQUIRED");
    expect(Number(row?.last_sequence)).toBe(Number(last.sequence));
    await agentd.client.tasks.cancelTask({ taskId: last.taskId });
  });

  it("an answer sent just before the half-close is applied and the stream follows the task to its end", async () => {
    const paused = await pausedTask({ ask: [twoQuestions[0]], steps: 1 });
    const call = converse(grpcClient, agentd.key);
    call.write({ attach: { taskId: paused.id } });
    call.write({ input: { value: toValue("Ada") } });
    call.end();
    expect((await call.status).code).toBe(grpc.status.OK);
    expect(call.all.filter((r) => r.rejection)).toEqual([]);
    expect(call.all.filter((r) => r.event).at(-1)?.event?.stateChange?.state).toBe("TASK_STATE_SUCCEEDED");
  });
});

describe("Converse: malformed sequences", () => {
  it("a first message that is not start or attach ends the call; no task is created", async () => {
    const before = (await agentd.client.tasks.listTasks({})).tasks.length;
    const call = converse(grpcClient, agentd.key);
    call.write({ input: { value: toValue("hi") } });
    const status = await call.status;
    expect(status.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(status.details).toMatch(/first message must be start or attach/);

    const empty = converse(grpcClient, agentd.key);
    empty.write({});
    expect((await empty.status).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await agentd.client.tasks.listTasks({})).tasks.length).toBe(before);
  });

  it("half-closing before any message is a quiet, empty conversation", async () => {
    const call = converse(grpcClient, agentd.key);
    call.end();
    expect((await call.status).code).toBe(grpc.status.OK);
    expect(call.all).toEqual([]);
  });

  it("a second start, an empty message, or an input without a value is refused; the task goes on untouched", async () => {
    const requests = pipe();
    const it = agentd.client.agents.converse(requests)[Symbol.asyncIterator]();
    requests.push({ msg: { case: "start", value: { agent: "simulate", input: value({ ask: [twoQuestions[0]] }) } } });
    const opening = await readUntil(
      it,
      (r) => r.event?.event.case === "stateChange" && r.event.event.value.state === TaskState.INPUT_REQUIRED,
    );
    const taskId = opening[0]!.event!.taskId;
    const before = await stored(taskId);

    requests.push({ msg: { case: "start", value: { agent: "simulate" } } });
    requests.push({ msg: { case: "attach", value: { taskId } } });
    requests.push({});
    requests.push({ msg: { case: "input", value: {} } });
    let rejections = 0;
    const refused = await readUntil(it, (r) => r.rejection !== undefined && ++rejections === 4);
    expect(refused.flatMap((r) => (r.rejection ? [[r.rejection.code, r.rejection.reason]] : []))).toEqual([
      ["FAILED_PRECONDITION", "CONVERSATION_ALREADY_STARTED"],
      ["FAILED_PRECONDITION", "CONVERSATION_ALREADY_STARTED"],
      ["INVALID_ARGUMENT", "EMPTY_MESSAGE"],
      ["INVALID_ARGUMENT", "INVALID_ARGUMENT"],
    ]);
    expect(refused.at(-1)!.rejection!.message).toMatch(/input.value: is required/);
    const after = await stored(taskId);
    expect(after?.state).toBe("INPUT_REQUIRED");
    expect(after?.last_sequence).toBe(before?.last_sequence);

    // Still conversing: cancel works, and the conversation ends after the terminal event.
    requests.push({ msg: { case: "cancel", value: {} } });
    const rest = await readUntil(it, () => false);
    expect(rest.at(-1)?.event?.event.case).toBe("stateChange");
    expect((await stored(taskId))?.state).toBe("CANCELED");
    requests.end();
  });

  it("attach: unknown or foreign task NOT_FOUND, negative after_sequence INVALID_ARGUMENT, no tasks:write PERMISSION_DENIED", async () => {
    const paused = await pausedTask({ ask: [twoQuestions[0]] });
    const attach = async (key: string, attach: object) => {
      const call = converse(grpcClient, key);
      call.write({ attach });
      const status = await call.status;
      return status;
    };
    const unknown = await attach(agentd.key, { taskId: "0190a9f4-0000-7000-8000-000000000000" });
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toMatch(/task "0190a9f4-0000-7000-8000-000000000000" not found/);
    expect((await attach(await agentd.createKey("t2"), { taskId: paused.id })).code).toBe(grpc.status.NOT_FOUND);
    const negative = await attach(agentd.key, { taskId: paused.id, afterSequence: "-1" });
    expect(negative.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(negative.details).toMatch(/attach.after_sequence: must not be negative/);
    const runner = await agentd.createKey("t1", ["agents:run"]);
    const denied = await attach(runner, { taskId: paused.id });
    expect(denied.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied.details).toMatch(/tasks:write/);
    expect((await stored(paused.id))?.state).toBe("INPUT_REQUIRED");
    await agentd.client.tasks.cancelTask({ taskId: paused.id });
  });
});

describe("ProvideInput", () => {
  it("checks the answer against the request's schema: INVALID_ARGUMENT with field violations, the task untouched", async () => {
    const paused = await pausedTask({ ask: [twoQuestions[1]] });
    const err = await expectCode(
      agentd.client.tasks.provideInput({ taskId: paused.id, value: value({ ok: "yes", extra: 1 }) }),
      Code.InvalidArgument,
    );
    expect(errorInfo(err)?.reason).toBe("ANSWER_SCHEMA_VIOLATION");
    expect(badRequest(err)?.fieldViolations.map((v) => v.field)).toContain("value.ok");
    const missing = await expectCode(agentd.client.tasks.provideInput({ taskId: paused.id }), Code.InvalidArgument);
    expect(missing.message).toMatch(/value: is required/);
    const row = await stored(paused.id);
    expect(row?.state).toBe("INPUT_REQUIRED");
    expect(row?.last_sequence).toBe(Number(paused.lastSequence));

    const { task } = await agentd.client.tasks.provideInput({ taskId: paused.id, value: value({ ok: true }) });
    expect(task?.state).toBe(TaskState.QUEUED);
    const done = await waitForState(agentd.client, paused.id, TaskState.SUCCEEDED);
    expect(plain(done.output)).toMatchObject({ answers: [{ ok: true }] });
  });

  it("is idempotent per request_id: a repeat returns the task and never answers a later question", async () => {
    const paused = await pausedTask({ ask: twoQuestions });
    const first = await agentd.client.tasks.provideInput({ taskId: paused.id, value: value("Ada"), requestId: "r-1" });
    const repeat = await agentd.client.tasks.provideInput({ taskId: paused.id, value: value("Ada"), requestId: "r-1" });
    expect(repeat.task?.id).toBe(paused.id);
    const waiting = await waitForState(agentd.client, paused.id, TaskState.INPUT_REQUIRED);
    expect(waiting.inputRequest?.prompt).toBe("Approve?");
    // The same key again, now that the second question waits: still not applied.
    const late = await agentd.client.tasks.provideInput({
      taskId: paused.id,
      value: value({ ok: true }),
      requestId: "r-1",
    });
    expect(late.task?.state).toBe(TaskState.INPUT_REQUIRED);
    expect(late.task?.lastSequence).toBe(waiting.lastSequence);
    const events = await listAllEvents(agentd.client, paused.id);
    const queued = events.filter((e) => e.event.case === "stateChange" && e.event.value.state === TaskState.QUEUED);
    expect(queued).toHaveLength(2); // created, and the one answer
    expect(first.task?.state).toBe(TaskState.QUEUED);
    await agentd.client.tasks.provideInput({ taskId: paused.id, value: value({ ok: false }), requestId: "r-2" });
    const done = await waitForState(agentd.client, paused.id, TaskState.SUCCEEDED);
    expect(plain(done.output)).toMatchObject({ answers: ["Ada", { ok: false }] });
  });

  it("a task not waiting for input is FAILED_PRECONDITION; unknown and foreign tasks NOT_FOUND", async () => {
    const { task } = await agentd.client.agents.run({ agent: "simulate", input: value({ steps: 1 }) });
    const err = await expectCode(
      agentd.client.tasks.provideInput({ taskId: task!.id, value: value(1) }),
      Code.FailedPrecondition,
    );
    expect(err.message).toMatch(/is SUCCEEDED, not waiting for input/);
    expect(errorInfo(err)?.reason).toBe("TASK_NOT_WAITING_FOR_INPUT");
    await expectCode(
      agentd.client.tasks.provideInput({ taskId: "0190a9f4-0000-7000-8000-000000000000", value: value(1) }),
      Code.NotFound,
    );
    const paused = await pausedTask({ ask: [twoQuestions[0]] });
    const other = agentd.clients(await agentd.createKey("t2"));
    await expectCode(other.tasks.provideInput({ taskId: paused.id, value: value("x") }), Code.NotFound);
    const reader = agentd.clients(await agentd.createKey("t1", ["tasks:read"]));
    await expectCode(reader.tasks.provideInput({ taskId: paused.id, value: value("x") }), Code.PermissionDenied);
    expect((await stored(paused.id))?.state).toBe("INPUT_REQUIRED");
    await agentd.client.tasks.cancelTask({ taskId: paused.id });
  });

  it("an expired request fails the task with INPUT_TIMEOUT, and a late answer is FAILED_PRECONDITION", async () => {
    const expiring = { prompt: "Quick!", schema: { type: "boolean" }, expires_in_ms: 200 };
    const paused = await pausedTask({ ask: [expiring] });
    expect(paused.inputRequest?.expireTime).toBeDefined();
    await new Promise((r) => setTimeout(r, 300));
    // Past its expiry: refused whether or not the sweep has run yet.
    const late = await expectCode(
      agentd.client.tasks.provideInput({ taskId: paused.id, value: value(true) }),
      Code.FailedPrecondition,
    );
    expect(["INPUT_EXPIRED", "TASK_NOT_WAITING_FOR_INPUT"]).toContain(errorInfo(late)?.reason);
    const { task } = await agentd.client.tasks.getTask({ taskId: paused.id });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error?.code).toBe("INPUT_TIMEOUT");

    // Nobody answers: the sweep fails it by itself.
    const other = await pausedTask({ ask: [expiring] });
    const failed = await waitForState(agentd.client, other.id, TaskState.FAILED, 5000);
    expect(failed.error?.code).toBe("INPUT_TIMEOUT");
    expect(failed.error?.message).toMatch(/not answered before it expired/);
    const events = await listAllEvents(agentd.client, other.id);
    expect(events.at(-1)?.event.value).toMatchObject({ state: TaskState.FAILED });
  });

  it("boolean schemas are kept as their object forms; a schema the server cannot apply fails the task (the agent's bug)", async () => {
    const anything = await pausedTask({ ask: [{ prompt: "Anything?", schema: true }] });
    expect(anything.inputRequest?.schema).toEqual({});
    await agentd.client.tasks.provideInput({ taskId: anything.id, value: value([1, "two", null]) });
    const done = await waitForState(agentd.client, anything.id, TaskState.SUCCEEDED);
    expect(plain(done.output)).toMatchObject({ answers: [[1, "two", null]] });

    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ ask: [{ prompt: "Broken", schema: { type: "object", properties: {}, required: ["missing"] } }] }),
    });
    const failed = await waitForState(agentd.client, task!.id, TaskState.FAILED);
    expect(failed.error?.code).toBe("AGENT_ERROR");
    expect(failed.error?.message).toMatch(/JSON Schema that cannot be applied/);
  });
});

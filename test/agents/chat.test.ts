// The `chat` agent against a loopback OpenAI-compatible server speaking the real wire format:
// token streaming over gRPC and SSE, tool calls (calculator and summarize) from split deltas,
// bounded tool rounds, two turns over Converse and over ProvideInput (with a restart between
// turns), cancellation closing the upstream connection, upstream failures mapped to TaskError
// codes (429 retried after Retry-After, 401, a cut stream, a server that never answers), the
// API key kept out of everything a client sees, and `chat` unavailable without configuration.
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConverseRequest, ConverseRequestSchema } from "../../gen/agentd/v1/agent_service_pb.js";
import { type TaskEvent, TaskState } from "../../gen/agentd/v1/task_pb.js";
import type { Config } from "../../services/shared/config.js";
import { asJson, drain, listAllEvents, waitForState } from "../streams/support.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { createTestDatabase } from "../support/database.js";
import { errorInfo, expectCode } from "../support/expect.js";
import { plain, value } from "../support/json.js";
import { type FakeLlm, startFakeLlm, tokensOf } from "./fake-llm.js";

const API_KEY = "sk-test-Secret0123456789abcdef";

let llm: FakeLlm;
let agentd: TestAgentd;
const llmConfig = (): Partial<Config> => ({
  llmBaseUrl: llm.baseUrl,
  llmModel: "fake-model",
  llmApiKey: API_KEY,
  llmMaxToolRounds: 3,
});

beforeAll(async () => {
  llm = await startFakeLlm();
  agentd = await startAgentd({ config: llmConfig() });
});
afterAll(async () => {
  await agentd?.close();
  await llm?.close();
});

const deltasOf = (events: TaskEvent[]) =>
  events.filter((e) => e.event.case === "delta").map((e) => (e.event.value as { text: string }).text);
const ANSWER = "The capital of France is Paris, a city on the Seine.";

describe("chat: streaming", () => {
  it("streams the reply as deltas over gRPC (RunStream) and returns the documented output", async () => {
    llm.respond = () => ({ kind: "stream", tokens: tokensOf(ANSWER), gapMs: 40 });
    const client = agentd.clients(agentd.key, "grpc");
    const { events } = await drain(
      client.agents.runStream({ agent: "chat", input: value({ prompt: "Capital of France?", system: "Be brief." }) }),
    );
    const deltas = deltasOf(events);
    expect(deltas.join("")).toBe(ANSWER);
    // 40 ms between tokens against a 30 ms coalescing window: the reply arrives in pieces.
    expect(deltas.length).toBeGreaterThan(1);
    const last = events.at(-1)!;
    expect(last.event.case === "stateChange" && last.event.value.state).toBe(TaskState.SUCCEEDED);
    const task = (await agentd.client.tasks.getTask({ taskId: last.taskId })).task!;
    expect(plain(task.output)).toEqual({
      reply: ANSWER,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Capital of France?" },
        { role: "assistant", content: ANSWER },
      ],
      finish_reason: "stop",
      usage: { prompt_tokens: 10, completion_tokens: tokensOf(ANSWER).length },
      turns: 1,
    });
    const seen = llm.requests.at(-1)!;
    expect(seen.body).toMatchObject({ model: "fake-model", stream: true });
    expect(seen.authorization).toBe(`Bearer ${API_KEY}`);
    // Offered by default: the calculator and every other agent whose card says `callable`, with
    // the agent's input schema as the function's parameters (not simulate, analyze-document or chat).
    const offered = new Map(seen.body.tools?.map((t) => [t.function.name, t.function]));
    expect([...offered.keys()].sort()).toEqual(["calculator", "summarize", "validate"]);
    const summarize = (await agentd.client.agents.getAgent({ name: "summarize" })).agent!;
    expect((offered.get("summarize") as { parameters?: unknown }).parameters).toEqual(summarize.inputSchema);
  });

  it("streams the reply over SSE", async () => {
    llm.respond = () => ({ kind: "stream", tokens: tokensOf(ANSWER), gapMs: 40 });
    const { task } = await agentd.client.tasks.createTask({
      agent: "chat",
      input: value({ prompt: "Capital of France?" }),
    });
    const res = await fetch(`${agentd.url}/v1/tasks/${task!.id}/events`, {
      headers: { authorization: `Bearer ${agentd.key}` },
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const decoder = new TextDecoder();
    let buffer = "";
    const texts: string[] = [];
    let terminal = false;
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let at = buffer.indexOf("\n\n"); at >= 0; at = buffer.indexOf("\n\n")) {
        const data = buffer
          .slice(0, at)
          .split("\n")
          .find((l) => l.startsWith("data:"));
        buffer = buffer.slice(at + 2);
        if (!data) continue;
        const event = JSON.parse(data.slice(5)) as { delta?: { text: string }; stateChange?: { state: string } };
        if (event.delta) texts.push(event.delta.text);
        if (event.stateChange?.state === "TASK_STATE_SUCCEEDED") terminal = true;
      }
      if (terminal) break;
    }
    expect(terminal).toBe(true);
    expect(texts.join("")).toBe(ANSWER);
    expect(texts.length).toBeGreaterThan(1);
  });
});

describe("chat: input", () => {
  it("sends messages, system, temperature and max_tokens upstream; tools: [] offers none", async () => {
    llm.respond = () => ({ kind: "stream", tokens: ["Four."] });
    const { task } = await agentd.client.agents.run({
      agent: "chat",
      input: value({
        system: "Answer with one word.",
        messages: [
          { role: "user", content: "2+2?" },
          { role: "assistant", content: "Four." },
          { role: "user", content: "And 2*2?" },
        ],
        temperature: 0.2,
        max_tokens: 16,
        tools: [],
      }),
    });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    const body = llm.requests.at(-1)!.body;
    expect(body).toMatchObject({ model: "fake-model", temperature: 0.2, max_tokens: 16, stream: true });
    expect(body.tools).toBeUndefined();
    expect(body.messages.map((m) => `${m.role}:${m.content}`)).toEqual([
      "system:Answer with one word.",
      "user:2+2?",
      "assistant:Four.",
      "user:And 2*2?",
    ]);
    expect(plain<{ messages: unknown[] }>(task!.output).messages).toHaveLength(5);
  });

  it("refuses input without prompt or messages (INVALID_ARGUMENT) and fails on an unknown tool (UNKNOWN_TOOL)", async () => {
    await expectCode(
      agentd.client.agents.run({ agent: "chat", input: value({ system: "alone" }) }),
      Code.InvalidArgument,
    );
    const before = llm.requests.length;
    const { task } = await agentd.client.agents.run({
      agent: "chat",
      input: value({ prompt: "hi", tools: ["calculator", "rm-rf"] }),
    });
    expect(task?.error).toMatchObject({ code: "UNKNOWN_TOOL", retryable: false });
    expect(task?.error?.message).toContain("rm-rf");
    expect(llm.requests.length).toBe(before); // refused before asking the model
  });
});

describe("chat: tools", () => {
  it("runs the calculator and summarize from tool-call deltas split across chunks, recorded as tool_call events", async () => {
    const article =
      "The river rose overnight. By morning the old bridge was closed to traffic. Engineers said the bridge would reopen " +
      "once the water fell. Schools in the valley stayed open. The mayor thanked the volunteers who filled sandbags.";
    llm.respond = (req) => {
      const last = req.body.messages.at(-1)!;
      if (last.role === "user") {
        return {
          kind: "stream",
          tokens: ["Let me check."],
          toolCalls: [
            { id: "call_calc", name: "calculator", arguments: JSON.stringify({ expression: "(17.5 * 4) / 100" }) },
            { id: "call_sum", name: "summarize", arguments: JSON.stringify({ text: article, max_words: 20 }) },
          ],
        };
      }
      return { kind: "stream", tokens: tokensOf("It is 0.7, and the bridge is closed.") };
    };
    const { task } = await agentd.client.agents.run({
      agent: "chat",
      input: value({ prompt: "What is 17.5 * 4 / 100, and summarize this.", tools: ["calculator", "summarize"] }),
    });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    const request = llm.requests.at(-2)!;
    expect(request.body.tools?.map((t) => t.function.name).sort()).toEqual(["calculator", "summarize"]);
    const followUp = llm.requests.at(-1)!.body.messages;
    const toolResults = followUp.filter((m) => m.role === "tool");
    expect(toolResults.map((m) => m.tool_call_id)).toEqual(["call_calc", "call_sum"]);
    expect(JSON.parse(toolResults[0]!.content!)).toEqual({ result: 0.7 });
    expect(JSON.parse(toolResults[1]!.content!).summary).toContain("bridge");
    const events = await listAllEvents(agentd.client, task!.id);
    const calls = asJson(events.filter((e) => e.event.case === "toolCall")) as {
      toolCall: { name: string; arguments: unknown; result?: unknown };
    }[];
    expect(calls.map((c) => c.toolCall.name)).toEqual(["calculator", "summarize"]);
    expect(calls[0]!.toolCall).toMatchObject({
      arguments: { expression: "(17.5 * 4) / 100" },
      result: { result: 0.7 },
    });
    expect(plain<{ reply: string }>(task!.output).reply).toBe("It is 0.7, and the bridge is closed.");
  });

  it("assembles parallel tool calls whose argument pieces arrive interleaved", async () => {
    llm.respond = (req) =>
      req.body.messages.at(-1)!.role === "user"
        ? {
            kind: "stream",
            interleaveToolCalls: true,
            toolCalls: [
              { id: "a", name: "calculator", arguments: JSON.stringify({ expression: "123 * 456" }) },
              { id: "b", name: "calculator", arguments: JSON.stringify({ expression: "2 ^ 10 - 24" }) },
            ],
          }
        : { kind: "stream", tokens: ["56088 and 1000."] };
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "Two sums." }) });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    const results = llm.requests
      .at(-1)!
      .body.messages.filter((m) => m.role === "tool")
      .map((m) => [m.tool_call_id, JSON.parse(m.content!)]);
    expect(results).toEqual([
      ["a", { result: 56088 }],
      ["b", { result: 1000 }],
    ]);
  });

  it("tells the model about a failing tool call instead of failing the task", async () => {
    llm.respond = (req) =>
      req.body.messages.at(-1)!.role === "user"
        ? { kind: "stream", toolCalls: [{ id: "c1", name: "calculator", arguments: '{"expression": "1 / 0"}' }] }
        : { kind: "stream", tokens: ["Division by zero is undefined."] };
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "1/0?" }) });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    expect(JSON.parse(llm.requests.at(-1)!.body.messages.at(-1)!.content!)).toEqual({ error: "division by zero" });
    const call = (await listAllEvents(agentd.client, task!.id)).find((e) => e.event.case === "toolCall")!;
    expect(call.event.value).toMatchObject({ name: "calculator", error: "division by zero" });
  });

  it("fails with TOOL_ROUNDS_EXCEEDED when the model keeps calling tools", async () => {
    llm.respond = (_, i) => ({
      kind: "stream",
      toolCalls: [{ id: `c${i}`, name: "calculator", arguments: '{"expression":"1+1"}' }],
    });
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "loop" }) });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error).toMatchObject({ code: "TOOL_ROUNDS_EXCEEDED", retryable: false });
  });
});

/** Client messages for Converse, pushed one by one. */
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

/** Answers with the number of user messages seen, so each turn is recognisable. */
function countingModel() {
  llm.respond = (req) => {
    const n = req.body.messages.filter((m) => m.role === "user").length;
    return { kind: "stream", tokens: tokensOf(`Reply number ${n}.`) };
  };
}

describe("chat: conversations", () => {
  it("holds two turns over Converse, the history going to the model each time", async () => {
    countingModel();
    const out = pipe();
    out.push({ msg: { case: "start", value: { agent: "chat", input: value({ prompt: "Hi", conversation: true }) } } });
    const it = agentd.client.agents.converse(out)[Symbol.asyncIterator]();
    const texts: string[] = [];
    let inputs = 0;
    let final: TaskState | undefined;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      const e = r.value.event;
      if (e?.event.case === "delta") texts.push(e.event.value.text);
      if (e?.event.case === "inputRequest") {
        inputs++;
        if (inputs === 1) out.push({ msg: { case: "input", value: { value: value({ message: "And again?" }) } } });
        else out.push({ msg: { case: "input", value: { value: value({ done: true }) } } });
      }
      if (e?.event.case === "stateChange" && [TaskState.SUCCEEDED, TaskState.FAILED].includes(e.event.value.state)) {
        final = e.event.value.state;
        out.end();
      }
    }
    expect(final).toBe(TaskState.SUCCEEDED);
    expect(texts.join("")).toBe("Reply number 1.Reply number 2.");
    const history = llm.requests.at(-1)!.body.messages.map((m) => `${m.role}:${m.content}`);
    expect(history).toEqual(["user:Hi", "assistant:Reply number 1.", "user:And again?"]);
  });

  it("holds two turns over WatchTask + ProvideInput, answering each input_request as it is watched", async () => {
    countingModel();
    const { task } = await agentd.client.tasks.createTask({
      agent: "chat",
      input: value({ prompt: "Hi", conversation: true }),
    });
    const texts: string[] = [];
    const prompts: string[] = [];
    let final: TaskState | undefined;
    for await (const res of agentd.client.tasks.watchTask({ taskId: task!.id })) {
      const e = res.event?.event;
      if (e?.case === "delta") texts.push(e.value.text);
      if (e?.case === "inputRequest") {
        prompts.push(e.value.prompt);
        const answer = prompts.length === 1 ? { message: "And again?" } : { done: true };
        await agentd.client.tasks.provideInput({ taskId: task!.id, value: value(answer) });
      }
      if (e?.case === "stateChange" && [TaskState.SUCCEEDED, TaskState.FAILED].includes(e.value.state)) {
        final = e.value.state;
        break;
      }
    }
    expect(final).toBe(TaskState.SUCCEEDED);
    expect(prompts).toEqual(["Reply number 1.", "Reply number 2."]);
    expect(texts.join("")).toBe("Reply number 1.Reply number 2.");
    const history = llm.requests.at(-1)!.body.messages.map((m) => `${m.role}:${m.content}`);
    expect(history).toEqual(["user:Hi", "assistant:Reply number 1.", "user:And again?"]);
    const done = (await agentd.client.tasks.getTask({ taskId: task!.id })).task!;
    expect(plain(done.output)).toMatchObject({ reply: "Reply number 2.", turns: 2 });
  });

  it("holds two turns over ProvideInput, across a restart of the service between turns", async () => {
    countingModel();
    const database = await createTestDatabase();
    let first: TestAgentd | undefined = await startAgentd({ database, config: llmConfig() });
    let second: TestAgentd | undefined;
    try {
      const { task } = await first.client.tasks.createTask({
        agent: "chat",
        input: value({ prompt: "Hi", conversation: true }),
      });
      const paused = await waitForState(first.client, task!.id, TaskState.INPUT_REQUIRED);
      expect(paused.inputRequest?.prompt).toBe("Reply number 1.");
      // Nothing runs while the human thinks: stop the service entirely (the database stays).
      await first.service.close();
      await first.bus.close();
      await first.db.close();
      first = undefined;
      second = await startAgentd({ database, config: llmConfig() });
      await second.client.tasks.provideInput({ taskId: task!.id, value: value({ message: "Second question" }) });
      const again = await waitForState(second.client, task!.id, TaskState.INPUT_REQUIRED);
      expect(again.inputRequest?.prompt).toBe("Reply number 2.");
      await second.client.tasks.provideInput({ taskId: task!.id, value: value({ done: true }) });
      const done = await waitForState(second.client, task!.id, TaskState.SUCCEEDED);
      const output = plain<{ reply: string; turns: number; messages: unknown[] }>(done.output);
      expect(output).toMatchObject({ reply: "Reply number 2.", turns: 2 });
      expect(output.messages).toHaveLength(4);
      // Each turn's text was streamed once: the resumed run did not repeat the first reply.
      const deltas = deltasOf(await listAllEvents(second.client, task!.id));
      expect(deltas.join("")).toBe("Reply number 1.Reply number 2.");
      // A wrong answer is refused by the schema of the question.
      const paused2 = await second.client.tasks.createTask({
        agent: "chat",
        input: value({ prompt: "x", conversation: true }),
      });
      await waitForState(second.client, paused2.task!.id, TaskState.INPUT_REQUIRED);
      for (const wrong of [{ msg: "typo" }, {}, { done: false }]) {
        await expectCode(
          second.client.tasks.provideInput({ taskId: paused2.task!.id, value: value(wrong) }),
          Code.InvalidArgument,
        );
      }
    } finally {
      if (first) await first.close();
      await second?.close();
    }
  });
});

describe("chat: cancellation and upstream failures", () => {
  it("cancelling the task closes the upstream connection at once", async () => {
    llm.respond = () => ({ kind: "stream", tokens: Array.from({ length: 500 }, (_, i) => ` t${i}`), gapMs: 50 });
    const before = llm.requests.length;
    const { task } = await agentd.client.tasks.createTask({ agent: "chat", input: value({ prompt: "Talk forever" }) });
    const deadline = Date.now() + 10_000;
    while (llm.requests.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const upstream = llm.requests.at(-1)!;
    await agentd.client.tasks.cancelTask({ taskId: task!.id });
    const closedInTime = await Promise.race([
      upstream.closed.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 5000)),
    ]);
    expect(closedInTime).toBe(true);
    expect(upstream.finished).toBe(false);
    expect((await agentd.client.tasks.getTask({ taskId: task!.id })).task?.state).toBe(TaskState.CANCELED);
  });

  it("retries a 429 after its Retry-After, then succeeds", async () => {
    let calls = 0;
    llm.respond = () =>
      ++calls === 1
        ? { kind: "error", status: 429, message: "slow down", headers: { "retry-after": "1" } }
        : { kind: "stream", tokens: ["Fine."] };
    const started = Date.now();
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    expect(calls).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it("honours Retry-After given as an HTTP date, and gives up on 429 after its retries with UPSTREAM_RATE_LIMITED (retryable)", async () => {
    const at: number[] = [];
    llm.respond = () => {
      at.push(Date.now());
      // The first answer asks for 2 s by date (whole seconds: at least 1 s from now); then "0" each time.
      const retryAfter = at.length === 1 ? new Date(Date.now() + 2000).toUTCString() : "0";
      return { kind: "error", status: 429, message: "rate limited", headers: { "retry-after": retryAfter } };
    };
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error).toMatchObject({ code: "UPSTREAM_RATE_LIMITED", retryable: true });
    expect(at).toHaveLength(5); // the first try and 4 retries
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(900);
  });

  it("retries 5xx with backoff, honouring Retry-After, then succeeds", async () => {
    const at: number[] = [];
    llm.respond = () => {
      at.push(Date.now());
      if (at.length === 1)
        return { kind: "error", status: 503, message: "overloaded", headers: { "retry-after": "1" } };
      if (at.length === 2) return { kind: "error", status: 500, message: "internal error" };
      return { kind: "stream", tokens: ["Fine."] };
    };
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    expect(plain<{ reply: string }>(task!.output).reply).toBe("Fine.");
    expect(at).toHaveLength(3);
    // The 503's Retry-After (1 s) was waited out; the 500, without one, got the second backoff (1 s ±20 %).
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(900);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(700);
  });

  it("gives up on 5xx after its retries with UPSTREAM_ERROR (retryable), and at once when Retry-After is too long", async () => {
    let calls = 0;
    llm.respond = () => {
      calls++;
      return { kind: "error", status: 502, message: "bad gateway", headers: { "retry-after": "0" } };
    };
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error).toMatchObject({ code: "UPSTREAM_ERROR", retryable: true });
    expect(task?.error?.message).toContain("HTTP 502");
    expect(calls).toBe(5); // the first try and 4 retries

    calls = 0;
    llm.respond = () => {
      calls++;
      return { kind: "error", status: 503, message: "maintenance", headers: { "retry-after": "3600" } };
    };
    const started = Date.now();
    const late = (await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) })).task!;
    expect(late.error).toMatchObject({ code: "UPSTREAM_ERROR", retryable: true });
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it("waits out Retry-After only within the task's timeout", async () => {
    llm.respond = () => ({ kind: "error", status: 503, message: "busy", headers: { "retry-after": "20" } });
    const started = Date.now();
    const { task } = await agentd.client.agents.run({
      agent: "chat",
      input: value({ prompt: "hi" }),
      timeout: { seconds: 1n },
    });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error?.code).toBe("TIMEOUT");
    expect(Date.now() - started).toBeLessThan(15_000); // not the 20 s the server asked for
  });

  it("fails with UPSTREAM_UNAUTHORIZED on 401, and the API key appears in no error or event", async () => {
    llm.respond = () => ({ kind: "error", status: 401, message: `Incorrect API key provided: ${API_KEY}` });
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error).toMatchObject({ code: "UPSTREAM_UNAUTHORIZED", retryable: false });
    const everything = JSON.stringify(asJson(await listAllEvents(agentd.client, task!.id)));
    expect(everything).not.toContain("Secret0123");
    expect(JSON.stringify(task?.error)).not.toContain("Secret0123");
  });

  it("fails with UPSTREAM_ERROR (not retryable) on a 400 and scrubs the key from the upstream's message", async () => {
    llm.respond = () => ({ kind: "error", status: 400, message: `bad request for key ${API_KEY}` });
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) });
    expect(task?.error).toMatchObject({ code: "UPSTREAM_ERROR", retryable: false });
    expect(task?.error?.message).toContain("HTTP 400");
    expect(task?.error?.message).not.toContain("Secret0123");
  });

  it("fails with UPSTREAM_RATE_LIMITED (retryable) when the server asks to wait longer than allowed", async () => {
    llm.respond = () => ({ kind: "error", status: 429, message: "quota", headers: { "retry-after": "3600" } });
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) });
    expect(task?.error).toMatchObject({ code: "UPSTREAM_RATE_LIMITED", retryable: true });
  });

  it("fails with UPSTREAM_BAD_RESPONSE (retryable) when the stream is cut mid-answer, after streaming what came", async () => {
    llm.respond = () => ({ kind: "stream", tokens: tokensOf(ANSWER), cutAfter: 3, gapMs: 5 });
    const { task } = await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error).toMatchObject({ code: "UPSTREAM_BAD_RESPONSE", retryable: true });
    expect(deltasOf(await listAllEvents(agentd.client, task!.id)).join("")).toBe(tokensOf(ANSWER).slice(0, 3).join(""));
  });

  it("an error object mid-stream is UPSTREAM_ERROR (retryable) with the server's message; a chunk that is not JSON is UPSTREAM_BAD_RESPONSE", async () => {
    llm.respond = () => ({
      kind: "stream",
      tokens: tokensOf(ANSWER),
      breakWith: {
        after: 2,
        line: JSON.stringify({ error: { message: "the model crashed", type: "server_error", code: null } }),
      },
    });
    const broken = (await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) })).task!;
    expect(broken.error).toMatchObject({ code: "UPSTREAM_ERROR", retryable: true });
    expect(broken.error?.message).toContain("the model crashed");
    expect(deltasOf(await listAllEvents(agentd.client, broken.id)).join("")).toBe(
      tokensOf(ANSWER).slice(0, 2).join(""),
    );

    llm.respond = () => ({ kind: "stream", tokens: tokensOf(ANSWER), breakWith: { after: 1, line: "{not json" } });
    const garbled = (await agentd.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) })).task!;
    expect(garbled.error).toMatchObject({ code: "UPSTREAM_BAD_RESPONSE", retryable: false });
  });

  it("a server that never answers ends in the task's TIMEOUT and the connection is closed", async () => {
    llm.respond = () => ({ kind: "hang" });
    const { task } = await agentd.client.agents.run({
      agent: "chat",
      input: value({ prompt: "hi" }),
      timeout: { seconds: 1n },
    });
    expect(task?.state).toBe(TaskState.FAILED);
    expect(task?.error?.code).toBe("TIMEOUT");
    await llm.requests.at(-1)!.closed;
  });
});

describe("chat: without configuration", () => {
  let bare: TestAgentd;
  beforeAll(async () => {
    bare = await startAgentd();
  });
  afterAll(async () => {
    await bare?.close();
  });

  it("is listed as unavailable with the reason, and running it is FAILED_PRECONDITION / AGENT_UNAVAILABLE", async () => {
    const { agents } = await bare.client.agents.listAgents({});
    const chat = agents.find((a) => a.name === "chat")!;
    expect(chat.available).toBe(false);
    expect(chat.unavailableReason).toContain("AGENTD_LLM_BASE_URL");
    expect(agents.find((a) => a.name === "summarize")?.available).toBe(true);
    for (const call of [
      bare.client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) }),
      bare.client.tasks.createTask({ agent: "chat", input: value({ prompt: "hi" }) }),
    ]) {
      const err = await expectCode(call, Code.FailedPrecondition);
      expect(errorInfo(err)?.reason).toBe("AGENT_UNAVAILABLE");
    }
    // The streaming RPCs refuse it as well, at once rather than hanging.
    const streamed = await expectCode(
      drain(bare.client.agents.runStream({ agent: "chat", input: value({ prompt: "hi" }) })),
      Code.FailedPrecondition,
    );
    expect(errorInfo(streamed)?.reason).toBe("AGENT_UNAVAILABLE");
    const out = pipe();
    out.push({ msg: { case: "start", value: { agent: "chat", input: value({ prompt: "hi", conversation: true }) } } });
    const conversed = await expectCode(
      (async () => {
        try {
          for await (const _ of bare.client.agents.converse(out)) {
            // nothing is expected before the error
          }
        } finally {
          out.end();
        }
      })(),
      Code.FailedPrecondition,
    );
    expect(errorInfo(conversed)?.reason).toBe("AGENT_UNAVAILABLE");
    expect((await agentd.client.agents.getAgent({ name: "chat" })).agent?.available).toBe(true);
  });
});

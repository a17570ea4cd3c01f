// WatchTask and RunStream (pattern 4): replay the log, then tail it live, end after the
// terminal event; resume without gaps or repeats; keep-alives; caps; slow readers.
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { AgentDefinition } from "../../services/agent/agents/agent.js";
import { findTask } from "../../services/agent/store/find-task.js";
import { type Protocol, startAgentd, type TestAgentd } from "../support/agentd.js";
import { errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";
import { asJson, drain, listAllEvents, metric, stateOf, TERMINAL, waitForState } from "./support.js";

/** Writes `count` log lines of `size` characters as fast as it can: a lot of bytes. */
const chatty: AgentDefinition<{ count: number; size: number }> = {
  name: "chatty",
  version: "1.0.0",
  description: "Writes many large log lines.",
  inputSchema: {
    type: "object",
    properties: { count: { type: "integer" }, size: { type: "integer" } },
    required: ["count", "size"],
  },
  outputSchema: {},
  async run(input, ctx) {
    for (let i = 1; i <= input.count; i++) await ctx.log("info", `${i} ${"x".repeat(input.size)}`);
    return { lines: input.count };
  },
};

const PER_CONNECTION = 4;
const PER_TENANT = 6;
let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd({
    agents: [chatty],
    config: {
      streamKeepAliveMs: 150,
      // A small window, so that resumes and slow readers also take the catch-up path.
      streamWindowEvents: 16,
      maxStreamsPerConnection: PER_CONNECTION,
      maxStreamsPerTenant: PER_TENANT,
    },
  });
});
afterAll(async () => {
  await agentd?.close();
});

/** A Connect protocol envelope holding one JSON message. */
function envelope(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message));
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  return frame;
}

/** Reads a Connect streaming response to its end: its messages, then its end-of-stream frame. */
async function readEnvelopes(stream: http2.ClientHttp2Stream): Promise<object[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const all = Buffer.concat(chunks);
  const messages: object[] = [];
  for (let at = 0; at < all.length; ) {
    const flags = all[at]!;
    const length = all.readUInt32BE(at + 1);
    const json = JSON.parse(all.subarray(at + 5, at + 5 + length).toString("utf8")) as object;
    if (flags & 0x02) expect(json).toEqual({});
    else messages.push(json);
    at += 5 + length;
  }
  return messages;
}

/** A task paused in INPUT_REQUIRED: nothing happens until someone answers or cancels. */
async function pausedTask(client = agentd.client) {
  const { task } = await client.tasks.createTask({
    agent: "simulate",
    input: value({ ask: [{ prompt: "go?", schema: { type: "boolean" } }] }),
  });
  return waitForState(client, task!.id, TaskState.INPUT_REQUIRED);
}

describe("WatchTask", () => {
  it("replays the log, follows the live task, and completes after the terminal event", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 5, step_delay_ms: 60, deltas: 5, delta_rate: 100 }),
    });
    const lags: number[] = [];
    const { events } = await drain(agentd.client.tasks.watchTask({ taskId: task!.id }), {
      onEvent: (e) => lags.push(Date.now() - Number(e.time!.seconds) * 1000 - e.time!.nanos / 1e6),
    });
    expect(asJson(events)).toEqual(asJson(await listAllEvents(agentd.client, task!.id)));
    expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
    expect(stateOf(events[0])).toBe(TaskState.QUEUED);
    expect(stateOf(events.at(-1))).toBe(TaskState.SUCCEEDED);
    const text = events.map((e) => (e.event.case === "delta" ? e.event.value.text : "")).join("");
    expect(text).toBe("d1 d2 d3 d4 d5 ");
    // Live: progress events arrived while the task ran, not all at its end.
    expect(Math.min(...lags)).toBeLessThan(500);
  });

  it("a reconnect from the last sequence seen yields every event once, in order, over every protocol (property)", async () => {
    const protocols: Protocol[] = ["connect", "grpc", "grpc-web"];
    const clients = Object.fromEntries(protocols.map((p) => [p, agentd.clients(agentd.key, p)]));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ cut: fc.integer({ min: 1, max: 8 }), protocol: fc.constantFrom(...protocols) }), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.integer({ min: 0, max: 60 }),
        async (legs, startDelayMs) => {
          const { task } = await agentd.client.tasks.createTask({
            agent: "simulate",
            input: value({ steps: 6, step_delay_ms: 10, deltas: 12, delta_rate: 250 }),
          });
          await new Promise((r) => setTimeout(r, startDelayMs));
          const received: unknown[] = [];
          let after = 0n;
          // Cut after `cut` events on each leg; the last leg reads to the end.
          for (const [i, leg] of legs.entries()) {
            const last = i === legs.length - 1;
            let n = 0;
            for await (const res of clients[leg.protocol]!.tasks.watchTask({
              taskId: task!.id,
              afterSequence: after,
            })) {
              if (!res.event) continue;
              received.push(res.event);
              after = res.event.sequence;
              if (!last && ++n >= leg.cut) break;
            }
          }
          const log = await listAllEvents(agentd.client, task!.id);
          expect(TERMINAL).toContain(stateOf(log.at(-1)));
          expect(asJson(received as never)).toEqual(asJson(log));
        },
      ),
      { numRuns: 12 },
    );
  });

  it("a cursor past the newest event waits (with keep-alives), and ends once the task ends", async () => {
    const paused = await pausedTask();
    const after = paused.lastSequence + 5n;
    let keepAlives = 0;
    const seen: unknown[] = [];
    const watching = (async () => {
      for await (const res of agentd.client.tasks.watchTask({ taskId: paused.id, afterSequence: after })) {
        if (res.keepAlive) {
          keepAlives++;
          expect(res.keepAlive.time).toBeDefined();
        } else seen.push(res.event);
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    // Established at once (a first keep-alive), then one per interval of 150 ms.
    expect(keepAlives).toBeGreaterThanOrEqual(3);
    await agentd.client.tasks.cancelTask({ taskId: paused.id });
    await watching;
    expect(seen).toEqual([]);
  });

  it("a task that has ended, watched from its last event, completes at once", async () => {
    const { task } = await agentd.client.agents.run({ agent: "simulate", input: value({ steps: 1 }) });
    const started = Date.now();
    const { events, keepAlives } = await drain(
      agentd.client.tasks.watchTask({ taskId: task!.id, afterSequence: task!.lastSequence }),
    );
    expect(events).toEqual([]);
    expect(keepAlives).toBe(0);
    expect(Date.now() - started).toBeLessThan(1000);
    const lastTwo = await drain(
      agentd.client.tasks.watchTask({ taskId: task!.id, afterSequence: task!.lastSequence - 2n }),
    );
    expect(lastTwo.events.map((e) => e.sequence)).toEqual([task!.lastSequence - 1n, task!.lastSequence]);
  });

  it("a slow reader is served from the log at its own pace: all events, in order, nothing buffered for it", async () => {
    // A raw HTTP/2 client that really stops reading (client libraries read ahead into memory),
    // so HTTP/2 flow control stops the server's writes while the agent writes ~1.2 MB of events.
    const catchUpBefore = await metric(agentd.url, "agentd_stream_log_reads_total", { reader: "catch_up" });
    const { task } = await agentd.client.tasks.createTask({
      agent: "chatty",
      input: value({ count: 300, size: 4000 }),
    });
    const session = http2.connect(agentd.url);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/agentd.v1.TaskService/WatchTask",
        "content-type": "application/connect+json",
        authorization: `Bearer ${agentd.key}`,
      });
      stream.end(envelope({ taskId: task!.id }));
      stream.pause();
      await waitForState(agentd.client, task!.id, TaskState.SUCCEEDED);
      await new Promise((r) => setTimeout(r, 100));
      expect(stream.state.localWindowSize).toBeLessThan(65_535); // the client's window is (nearly) used up
      const messages = await readEnvelopes(stream);
      const received = messages.filter((m) => "event" in m).map((m) => (m as { event: unknown }).event);
      expect(received).toEqual(asJson(await listAllEvents(agentd.client, task!.id)));
      // With a window of 16 events, the events it missed while blocked came from its own reads of the log.
      expect(await metric(agentd.url, "agentd_stream_log_reads_total", { reader: "catch_up" })).toBeGreaterThan(
        catchUpBefore,
      );
    } finally {
      session.close();
    }
  });

  it("dropping a watch leaves the task as it is", async () => {
    const paused = await pausedTask();
    for await (const _ of agentd.client.tasks.watchTask({ taskId: paused.id })) break;
    await new Promise((r) => setTimeout(r, 100));
    const stored = await findTask(agentd.db.sql, { tenantId: "t1", taskId: paused.id });
    expect(stored?.state).toBe("INPUT_REQUIRED");
    expect(Number(stored?.last_sequence)).toBe(Number(paused.lastSequence));
    await agentd.client.tasks.cancelTask({ taskId: paused.id });
  });
});

describe("RunStream", () => {
  it("creates the task and streams it to the end; the first message carries the task id", async () => {
    const { events } = await drain(
      agentd.client.agents.runStream({
        agent: "summarize",
        input: value({ text: "One sentence here. Another one there. A third one too." }),
      }),
    );
    const first = events[0]!;
    expect(first.event.case).toBe("stateChange");
    const taskId = first.event.case === "stateChange" ? first.event.value.task!.id : "";
    expect(taskId).toBe(first.taskId);
    expect(stateOf(events.at(-1))).toBe(TaskState.SUCCEEDED);
    expect(events.some((e) => e.event.case === "delta")).toBe(true);
    expect(asJson(events)).toEqual(asJson(await listAllEvents(agentd.client, taskId)));
  });

  it("a dropped stream does not cancel the task; a retry with the request_id streams the same task from its first event", async () => {
    const request = {
      agent: "simulate",
      input: value({ steps: 3, step_delay_ms: 150 }),
      requestId: "run-stream-retry-1",
    };
    let taskId = "";
    for await (const res of agentd.client.agents.runStream(request)) {
      taskId = res.event!.taskId;
      break;
    }
    const again = await drain(agentd.client.agents.runStream(request));
    expect(again.events[0]?.taskId).toBe(taskId);
    expect(again.events[0]?.sequence).toBe(1n);
    expect(stateOf(again.events.at(-1))).toBe(TaskState.SUCCEEDED);
    const { tasks } = await agentd.client.tasks.listTasks({});
    expect(tasks.filter((t) => t.requestId === "run-stream-retry-1")).toHaveLength(1);
  });

  it("bad requests fail before any task is created", async () => {
    await expectCode(drain(agentd.client.agents.runStream({ agent: "nope" })), Code.NotFound);
    await expectCode(
      drain(agentd.client.agents.runStream({ agent: "summarize", input: value({ text: 5 }) })),
      Code.InvalidArgument,
    );
    const reader = agentd.clients(await agentd.createKey("t1", ["tasks:read"]));
    await expectCode(drain(reader.agents.runStream({ agent: "simulate" })), Code.PermissionDenied);
  });
});

describe("bad input", () => {
  it("an unknown task, a malformed id, or another tenant's task is NOT_FOUND; a negative after_sequence INVALID_ARGUMENT", async () => {
    const { task } = await agentd.client.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) });
    for (const taskId of ["0190a9f4-0000-7000-8000-000000000000", "nope"]) {
      const err = await expectCode(drain(agentd.client.tasks.watchTask({ taskId })), Code.NotFound);
      expect(err.message).toContain(taskId);
    }
    const other = agentd.clients(await agentd.createKey("t2"));
    const err = await expectCode(drain(other.tasks.watchTask({ taskId: task!.id })), Code.NotFound);
    expect(errorInfo(err)?.reason).toBe("TASK_NOT_FOUND");
    const negative = await expectCode(
      drain(agentd.client.tasks.watchTask({ taskId: task!.id, afterSequence: -1n })),
      Code.InvalidArgument,
    );
    expect(negative.message).toMatch(/after_sequence: must not be negative/);
    await expectCode(drain(agentd.client.tasks.watchTask({ taskId: "" })), Code.InvalidArgument);
    const writer = agentd.clients(await agentd.createKey("t1", ["tasks:write"]));
    await expectCode(drain(writer.tasks.watchTask({ taskId: task!.id })), Code.PermissionDenied);
  });
});

describe("caps", () => {
  it("per connection and per tenant: RESOURCE_EXHAUSTED with a clear message and RetryInfo; a closed stream frees its slot", async () => {
    expect(await metric(agentd.url, "agentd_streams_open")).toBe(0);
    const paused = await pausedTask();
    const open = (client: typeof agentd.client) => {
      const controller = new AbortController();
      const it = client.tasks.watchTask({ taskId: paused.id }, { signal: controller.signal })[Symbol.asyncIterator]();
      return { first: it.next(), close: () => controller.abort() };
    };
    const first = agentd.clients();
    const streams = Array.from({ length: PER_CONNECTION }, () => open(first));
    await Promise.all(streams.map((s) => s.first)); // each is established

    const tooMany = await expectCode(open(first).first, Code.ResourceExhausted);
    expect(tooMany.message).toMatch(/this connection already has 4 open streams/);
    expect(errorInfo(tooMany)?.reason).toBe("TOO_MANY_STREAMS_ON_CONNECTION");
    expect(tooMany.findDetails(RetryInfoSchema)[0]?.retryDelay).toBeDefined();

    // Another connection of the same tenant: up to the tenant's cap.
    const second = agentd.clients();
    const more = Array.from({ length: PER_TENANT - PER_CONNECTION }, () => open(second));
    await Promise.all(more.map((s) => s.first));
    const tenantFull = await expectCode(open(second).first, Code.ResourceExhausted);
    expect(tenantFull.message).toMatch(/your tenant already has 6 open streams/);
    expect(errorInfo(tenantFull)?.reason).toBe("TOO_MANY_STREAMS");

    // Another tenant is not affected.
    const otherTenant = agentd.clients(await agentd.createKey("t3"));
    const theirs = await pausedTask(otherTenant);
    const stream = otherTenant.tasks.watchTask({ taskId: theirs.id })[Symbol.asyncIterator]();
    expect((await stream.next()).done).toBe(false);
    await stream.return?.();

    streams[0]!.close();
    await expect(streams[0]!.first.then(() => "ok")).resolves.toBe("ok");
    await new Promise((r) => setTimeout(r, 100));
    const reopened = open(first);
    expect((await reopened.first).done).toBe(false);
    for (const s of [...streams, ...more, reopened]) s.close();
    await agentd.client.tasks.cancelTask({ taskId: paused.id });
    await agentd.client.tasks.cancelTask({ taskId: theirs.id }).catch(() => {});
    await otherTenant.tasks.cancelTask({ taskId: theirs.id });
  });
});

describe("shutdown", () => {
  it("is not held up by open streams: they end with UNAVAILABLE and a cursor to resume from", async () => {
    const own = await startAgentd({ config: { shutdownGraceMs: 10_000 } });
    try {
      const paused = await pausedTask(own.client);
      const watching = drain(own.client.tasks.watchTask({ taskId: paused.id })).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      await own.service.close();
      const err = await watching;
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.message).toMatch(/reconnect .* after_sequence=/);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      await own.close();
    }
  });
});

// OpenTelemetry: an incoming traceparent is continued through the RPC, the
// task's queue wait, its run on another replica, its tool calls and its webhook
// attempts, and the webhook POST carries the trace on. In-memory exporter.
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import type { AgentDefinition } from "../../services/agent/agents/agent.js";
import { startTracing, type Tracing } from "../../services/shared/tracing.js";
import { clientsFor, startAgentd, type TestAgentd } from "../support/agentd.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { type Receiver, startReceiver, startWebhookHarness, type WebhookHarness } from "../webhooks/support.js";

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let harness: WebhookHarness;
let runnerReplica: TestAgentd;
let receiver: Receiver;

const lookup: AgentDefinition<{ word: string }, { length: number }> = {
  name: "lookup",
  version: "1.0.0",
  description: "Looks a word up with a tool.",
  inputSchema: { type: "object", properties: { word: { type: "string" } }, required: ["word"] },
  outputSchema: { type: "object", properties: { length: { type: "number" } } },
  capabilities: ["tools"],
  run: async (input, ctx) => ({
    length: await ctx.tool("measure", { word: input.word }, async () => input.word.length),
  }),
};

beforeAll(async () => {
  tracing = startTracing({ processors: [new SimpleSpanProcessor({ exporter })] });
  // Replica A serves the API only; replica B, on the same database, runs the tasks.
  harness = await startWebhookHarness({ config: { runnerConcurrency: 0 }, agents: [lookup] });
  runnerReplica = await startAgentd({ url: harness.agentd.db.url, agents: [lookup] });
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver?.close();
  await runnerReplica?.close();
  await harness?.close();
  await tracing?.shutdown();
});

describe("tracing", () => {
  it("a task created with a traceparent is traced through its queue wait, run, tool call and webhook on other components", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const traceparent = `00-${traceId}-00f067aa0ba902b7-01`;
    await harness.agentd.client.webhooks.rotateWebhookSecret({});
    const client = clientsFor(harness.agentd.url, harness.agentd.key);
    const { task } = await client.tasks.createTask(
      {
        agent: "lookup",
        input: value({ word: "river" }),
        webhook: { url: receiver.url, eventTypes: ["task.succeeded"] },
      },
      { headers: { traceparent } },
    );
    await until(
      () => client.tasks.getTask({ taskId: task!.id }),
      (r) => r.task?.state === TaskState.SUCCEEDED,
    );
    const [delivery] = await receiver.until((r) => r.length >= 1);
    const spans = await until(
      async () => exporter.getFinishedSpans(),
      (s) => s.some((x) => x.name.startsWith("webhook ")),
    );
    const inTrace = (name: string) =>
      spans.filter((s: ReadableSpan) => s.spanContext().traceId === traceId && s.name.startsWith(name));

    const [rpc] = inTrace("agentd.v1.TaskService/CreateTask");
    expect(rpc?.kind).toBe(SpanKind.SERVER);
    expect(rpc?.parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
    expect(inTrace("task.queue")).toHaveLength(1);
    const [run] = inTrace("agent.run lookup");
    expect(run?.attributes["agentd.task_id"]).toBe(task!.id);
    const [tool] = inTrace("tool measure");
    expect(tool?.parentSpanContext?.spanId).toBe(run?.spanContext().spanId);
    const [webhook] = inTrace("webhook task.succeeded");
    expect(webhook?.kind).toBe(SpanKind.CLIENT);
    // The receiver continues the trace from the attempt's span.
    expect(delivery?.headers.traceparent).toBe(`00-${traceId}-${webhook?.spanContext().spanId}-01`);
  });

  it("an RPC without traceparent starts its own trace; failed RPCs are marked", async () => {
    exporter.reset();
    await harness.agentd.client.tasks.getTask({ taskId: "00000000-0000-0000-0000-000000000000" }).catch(() => {});
    const [span] = exporter.getFinishedSpans().filter((s) => s.name === "agentd.v1.TaskService/GetTask");
    expect(span?.parentSpanContext).toBeUndefined();
    expect(span?.attributes["rpc.grpc.status_code"]).toBe(5);
  });
});

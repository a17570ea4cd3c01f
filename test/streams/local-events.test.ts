// The events a process writes reach its own watchers without a read of the log: the task writer
// hands them to the event hub after commit. What the watchers get is still exactly the log (every
// kind, its data and actor), over gRPC and SSE alike.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { asJson, drain, listAllEvents, metric, waitForState } from "./support.js";

let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd();
});
afterAll(async () => {
  await agentd?.close();
});

const tailReads = () => metric(agentd.url, "agentd_stream_log_reads_total", { reader: "tail" });

/** SSE of the task's events, as `data:` JSON objects, until the stream ends. */
async function sseEvents(taskId: string): Promise<{ sequence: string }[]> {
  const response = await fetch(`${agentd.url}/v1/tasks/${taskId}/events`, {
    headers: { authorization: `Bearer ${agentd.key}`, accept: "text/event-stream" },
  });
  expect(response.status).toBe(200);
  const text = await response.text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => JSON.parse(line.slice(5)) as { sequence: string })
    .filter((event) => event.sequence !== undefined);
}

describe("events written by this process", () => {
  it("reach its watchers without a read of the log, exactly as the log holds them", async () => {
    // Waits for input until the watchers are attached, then writes progress, deltas and its end.
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ ask: [{ prompt: "go?", schema: { type: "boolean" } }], steps: 5, deltas: 8, delta_rate: 100 }),
    });
    const taskId = task!.id;
    await waitForState(agentd.client, taskId, TaskState.INPUT_REQUIRED);
    const watched = drain(agentd.client.tasks.watchTask({ taskId }));
    const sse = sseEvents(taskId);
    await until(
      async () =>
        (await metric(agentd.url, "agentd_streams_open", { kind: "watch_task" })) +
        (await metric(agentd.url, "agentd_streams_open", { kind: "sse" })),
      (open) => open === 2,
      20_000,
    );
    // The tail's first read (its seed) has happened once the watch is open and has sent what there was.
    await until(tailReads, (reads) => reads > 0, 20_000);
    const readsBefore = await tailReads();
    await agentd.client.tasks.provideInput({ taskId, value: value(true) });
    const { events } = await watched;
    const sent = await sse;
    const reads = (await tailReads()) - readsBefore;

    const log = await listAllEvents(agentd.client, taskId);
    expect(asJson(events)).toEqual(asJson(log));
    expect(sent.map((e) => e.sequence)).toEqual(log.map((e) => String(e.sequence)));
    const kinds = new Set(log.map((e) => e.event.case));
    for (const kind of ["stateChange", "progress", "delta"]) expect(kinds).toContain(kind);
    // Every write after the input (at least the steps, the deltas' flushes and the end) was handed
    // over; a read happens only when one came while another read was in flight.
    const written = log.filter((e) => e.sequence > task!.lastSequence + 2n).length;
    expect(written).toBeGreaterThanOrEqual(8);
    expect(reads).toBeLessThan(written / 2);
  });
});

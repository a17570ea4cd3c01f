// Fan-out: all watchers of a task in one process share one tail of its log. 1,000
// concurrent WatchTask streams all receive every event, and the server reads the log no
// more often than for 10 watchers (its read counter, from GET /metrics).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { grpcTaskClient, grpcWatch } from "./grpc-client.js";
import { asJson, drain, listAllEvents, metric, waitForState } from "./support.js";

const CONNECTIONS = 4;
let agentd: TestAgentd;
let connections: ReturnType<typeof grpcTaskClient>[];
beforeAll(async () => {
  agentd = await startAgentd({ config: { maxStreamsPerConnection: 1000, maxStreamsPerTenant: 2000 } });
  // grpc-js, each client on its own HTTP/2 connection.
  connections = Array.from({ length: CONNECTIONS }, () => grpcTaskClient(agentd.url));
});
afterAll(async () => {
  for (const c of connections ?? []) c.close();
  await agentd?.close();
});

const logReads = async () =>
  (await metric(agentd.url, "agentd_stream_log_reads_total", { reader: "tail" })) +
  (await metric(agentd.url, "agentd_stream_log_reads_total", { reader: "catch_up" }));

/** `watchers` streams watch one task from its start while it runs; returns what each got and
 * how many reads of the log the server made meanwhile. */
async function watchTask(watchers: number) {
  // The task waits for input until every watcher is attached, then runs 3 steps.
  const { task } = await agentd.client.tasks.createTask({
    agent: "simulate",
    input: value({ ask: [{ prompt: "go?", schema: { type: "boolean" } }], steps: 3, step_delay_ms: 10 }),
  });
  await waitForState(agentd.client, task!.id, TaskState.INPUT_REQUIRED);
  const readsBefore = await logReads();
  const streams = Array.from({ length: watchers }, (_, i) =>
    grpcWatch(connections[i % CONNECTIONS]!, agentd.key, task!.id),
  );
  // One more through the Connect client, to compare whole events with the log.
  const whole = drain(agentd.client.tasks.watchTask({ taskId: task!.id }));
  await until(
    () => metric(agentd.url, "agentd_streams_open", { kind: "watch_task" }),
    (open) => open === watchers + 1,
    20_000,
  );
  await agentd.client.tasks.provideInput({ taskId: task!.id, value: value(true) });
  const results = await Promise.all(streams);
  const { events } = await whole;
  const reads = (await logReads()) - readsBefore;
  const log = await listAllEvents(agentd.client, task!.id);
  expect(asJson(events)).toEqual(asJson(log));
  return { results, reads, sequences: log.map((e) => String(e.sequence)) };
}

describe("fan-out", () => {
  it("1,000 concurrent watchers of one task all get every event, in order, and the log reads do not grow with them", async () => {
    const few = await watchTask(10);
    const many = await watchTask(1000);

    for (const run of [few, many]) {
      // 10 events, or more if a lease ran out under this load and the task was retried.
      expect(run.sequences.length).toBeGreaterThanOrEqual(10);
      for (const sequences of run.results) expect(sequences).toEqual(run.sequences);
    }
    // One shared read per new batch of events, whatever the number of watchers: per event of the
    // log, 1,000 watchers cost the server no more reads than 10 (and far fewer than one per watcher).
    const perEvent = (run: typeof few) => run.reads / run.sequences.length;
    expect(perEvent(many)).toBeLessThanOrEqual(perEvent(few) * 1.5 + 0.2);
    expect(many.reads).toBeLessThan(many.sequences.length * 2);
    expect(await metric(agentd.url, "agentd_stream_watched_tasks")).toBe(0);
  });
});

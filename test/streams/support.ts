// Shared by the streaming tests: reading streams, the event log, and /metrics.
import { toJson } from "@bufbuild/protobuf";
import { type TaskEvent, TaskEventSchema, TaskState } from "../../gen/agentd/v1/task_pb.js";
import type { Clients } from "../support/agentd.js";
import { until } from "../support/until.js";

/** Every event of a task's log, through ListTaskEvents (all pages). */
export async function listAllEvents(client: Clients, taskId: string): Promise<TaskEvent[]> {
  const all: TaskEvent[] = [];
  let pageToken = "";
  do {
    const page = await client.tasks.listTaskEvents({ taskId, pageSize: 1000, pageToken });
    all.push(...page.events);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

/** Events as comparable JSON. */
export function asJson(events: TaskEvent[]): unknown[] {
  return events.map((e) => toJson(TaskEventSchema, e));
}

export function stateOf(event: TaskEvent | undefined): TaskState | undefined {
  return event?.event.case === "stateChange" ? event.event.value.state : undefined;
}

export const TERMINAL = [TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELED];

/** Reads a WatchTask/RunStream-like stream to its end; events only (keep-alives counted apart). */
export async function drain(
  stream: AsyncIterable<{ event?: TaskEvent; keepAlive?: unknown }>,
  opts: { onEvent?: (e: TaskEvent) => void } = {},
): Promise<{ events: TaskEvent[]; keepAlives: number }> {
  const events: TaskEvent[] = [];
  let keepAlives = 0;
  for await (const res of stream) {
    if (res.event) {
      events.push(res.event);
      opts.onEvent?.(res.event);
    } else if (res.keepAlive) keepAlives++;
  }
  return { events, keepAlives };
}

export async function waitForState(client: Clients, taskId: string, state: TaskState, ms = 10_000) {
  const { task } = await until(
    () => client.tasks.getTask({ taskId }),
    (r) => r.task?.state === state,
    ms,
  );
  return task!;
}

/** A counter or gauge from the server's GET /metrics, summed over the label values given. */
export async function metric(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const lbls = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => lbls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

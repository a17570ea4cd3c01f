// Which task events become which webhook event types, and the body a receiver
// gets: {"type", "timestamp", "data": {"task": <Task proto3 JSON>, "sequence"}}.
import type { JsonObject } from "@bufbuild/protobuf";

export const WEBHOOK_EVENT_TYPES = [
  "task.running",
  "task.input_required",
  "task.succeeded",
  "task.failed",
  "task.canceled",
  "task.progress",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

const BY_STATE: Readonly<Record<string, WebhookEventType>> = {
  TASK_STATE_RUNNING: "task.running",
  TASK_STATE_INPUT_REQUIRED: "task.input_required",
  TASK_STATE_SUCCEEDED: "task.succeeded",
  TASK_STATE_FAILED: "task.failed",
  TASK_STATE_CANCELED: "task.canceled",
};

/** The webhook type of a task event, or null for events no webhook carries
 * (QUEUED, deltas, tool calls, logs, artifacts, input requests — the last
 * arrive with `task.input_required`). */
export function webhookTypeOf(event: { kind: string; data: JsonObject }): WebhookEventType | null {
  if (event.kind === "stateChange") return BY_STATE[String(event.data.state)] ?? null;
  if (event.kind === "progress") return "task.progress";
  return null;
}

/** The delivery body. `task` is the snapshot at this event. */
export function webhookPayload(type: WebhookEventType, time: Date, task: JsonObject, sequence: number): JsonObject {
  return { type, timestamp: time.toISOString(), data: { task, sequence } };
}

/** scheme://host:port of a URL: the unit of per-destination concurrency. */
export function targetOf(url: string): string {
  const u = new URL(url);
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  return `${u.protocol}//${u.hostname}:${port}`;
}

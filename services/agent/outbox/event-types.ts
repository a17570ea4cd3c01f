// Which task events become which webhook event types, and the body a receiver
// gets: {"type", "timestamp", "data": {"task": <Task proto3 JSON>, "sequence"}},
// plus "omittedFields" when the task was too large for the body bound.
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

/** Task fields a body may leave out to fit its bound; the rest are small and bounded. */
const OMISSIBLE = ["input", "output", "artifacts", "error", "progress", "inputRequest", "labels"] as const;

/** Default bound of a delivery body (AGENTD_WEBHOOK_MAX_PAYLOAD_BYTES). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024;

const byteLength = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/** The delivery body. `task` is the snapshot at this event. A body larger than
 * `maxBytes` leaves out the task's largest omissible fields, largest first, until it
 * fits, and names them in `data.omittedFields`: the receiver fetches them with GetTask.
 * The body stored in the outbox is this bounded one, so a large task costs no more
 * per delivery than a small one. */
export function webhookPayload(
  type: WebhookEventType,
  time: Date,
  task: JsonObject,
  sequence: number,
  maxBytes = DEFAULT_MAX_PAYLOAD_BYTES,
): JsonObject {
  const body: JsonObject = { type, timestamp: time.toISOString(), data: { task, sequence } };
  if (byteLength(body) <= maxBytes) return body;
  const trimmed: JsonObject = { ...task };
  const largestFirst = OMISSIBLE.filter((f) => trimmed[f] !== undefined)
    .map((field) => ({ field, bytes: byteLength(trimmed[field]) }))
    .sort((a, b) => b.bytes - a.bytes);
  const omitted: string[] = [];
  const bounded = () => ({
    type,
    timestamp: time.toISOString(),
    data: { task: trimmed, sequence, omittedFields: omitted },
  });
  for (const { field } of largestFirst) {
    delete trimmed[field];
    omitted.push(field);
    if (byteLength(bounded()) <= maxBytes) break;
  }
  return bounded();
}

/** scheme://host:port of a URL (text as stored, or already parsed): the unit of per-destination concurrency. */
export function targetOf(url: string | URL): string {
  const u = typeof url === "string" ? new URL(url) : url;
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  return `${u.protocol}//${u.hostname}:${port}`;
}

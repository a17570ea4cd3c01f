// Small display helpers shared by the views.
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { TaskState } from "../../../gen/agentd/v1/task_pb.js";
import { DeliveryState } from "../../../gen/agentd/v1/webhook_service_pb.js";

export const stateName = (s: TaskState) => (TaskState[s] ?? "UNKNOWN").replace("TASK_STATE_", "").toLowerCase();
export const deliveryStateName = (s: DeliveryState) =>
  (DeliveryState[s] ?? "UNKNOWN").replace("DELIVERY_STATE_", "").toLowerCase();
export const isTerminal = (s: TaskState) =>
  s === TaskState.SUCCEEDED || s === TaskState.FAILED || s === TaskState.CANCELED;

export const time = (t: Timestamp | undefined) => (t ? timestampDate(t).toLocaleString() : "—");
/** A JSON value as a google.protobuf.Value for a request. */
export const toValue = (v: JsonValue): Value => fromJson(ValueSchema, v);
const isValue = (v: unknown): v is Value =>
  typeof v === "object" && v !== null && (v as Value).$typeName === "google.protobuf.Value";
/** Pretty JSON of a JSON value or a google.protobuf.Value. */
export const json = (v: unknown) =>
  v === undefined ? "—" : JSON.stringify(isValue(v) ? toJson(ValueSchema, v) : v, null, 2);

/** "a=1, b=2" → {a: "1", b: "2"} */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(",")) {
    const [k, ...rest] = part.split("=");
    if (k?.trim()) out[k.trim()] = rest.join("=").trim();
  }
  return out;
}
/** Why `text` is not a list of key=value labels, or "" when it is (empty is fine). */
export function labelsProblem(text: string): string {
  const bad = text
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "" && !/^[^=\s][^=]*=/.test(p));
  return bad.length ? `Write labels as key=value, comma-separated (not "${bad[0]}").` : "";
}
export const showLabels = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");

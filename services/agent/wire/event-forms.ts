// The forms a stored event takes on the wire, computed once per event and
// process rather than once per watcher: a task watched 1,000 times converts each
// event once. (Events in the hub's window are shared objects, so a WeakMap keyed
// by the event is the cache, and it empties itself as the window moves on.)
import { toJson } from "@bufbuild/protobuf";
import { type TaskEvent, TaskEventSchema } from "../../../gen/agentd/v1/task_pb.js";
import type { StoredEvent } from "../model/change.js";
import { isTerminal, stateOfJsonName } from "../model/task.js";
import { toTaskEvent } from "./convert.js";

/** The state_change into SUCCEEDED, FAILED or CANCELED: the last event of a task's log. */
export function isTerminalEvent(event: StoredEvent): boolean {
  return event.kind === "stateChange" && isTerminal(stateOfJsonName(event.data.state));
}

const dataJson = new WeakMap<StoredEvent, string>();
const messages = new WeakMap<StoredEvent, TaskEvent>();

/** JSON of the event's payload (also the hub's measure of its size). */
export function eventDataJson(event: StoredEvent): string {
  let json = dataJson.get(event);
  if (json === undefined) {
    json = JSON.stringify(event.data);
    dataJson.set(event, json);
  }
  return json;
}

/** `event` as a read of the log returns it: its data through JSON (fields left undefined are gone),
 * no actor as null. For events handed over from the writer instead of read; the JSON of its data
 * is kept, as eventDataJson would compute it. */
export function asLogged(event: StoredEvent): StoredEvent {
  const json = JSON.stringify(event.data);
  const logged = { ...event, data: JSON.parse(json), actor: event.actor ?? null } as StoredEvent;
  dataJson.set(logged, json);
  return logged;
}

/** The agentd.v1.TaskEvent message. Shared by every stream that sends it: never mutate it. */
export function taskEventMessage(taskId: string, event: StoredEvent): TaskEvent {
  let message = messages.get(event);
  if (message === undefined) {
    message = toTaskEvent(taskId, event);
    messages.set(event, message);
  }
  return message;
}

/** Proto field names of the `TaskEvent.event` oneof, by stored kind: SSE `event:` names. */
const SSE_EVENT_NAMES: Record<StoredEvent["kind"], string> = {
  stateChange: "state_change",
  progress: "progress",
  delta: "delta",
  toolCall: "tool_call",
  inputRequest: "input_request",
  artifact: "artifact",
  log: "log",
};

const sseData = new WeakMap<StoredEvent, string>();

/** One SSE message: `id:` the sequence, `event:` the kind, `data:` the TaskEvent's proto3 JSON —
 * canonical, from the message itself, so byte for byte what WatchTask sends a Connect JSON client
 * (the stored JSON is close but not canonical: it keeps zero values, and floats unrounded). */
export function sseFrame(taskId: string, event: StoredEvent): string {
  let data = sseData.get(event);
  if (data === undefined) {
    data = JSON.stringify(toJson(TaskEventSchema, taskEventMessage(taskId, event)));
    sseData.set(event, data);
  }
  return `id: ${event.sequence}\nevent: ${SSE_EVENT_NAMES[event.kind]}\ndata: ${data}\n\n`;
}

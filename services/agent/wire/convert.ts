// Between stored rows and protobuf messages. Rows become proto3 JSON first
// (task-json.ts), so clients, webhooks and snapshots all see one form.
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type Task, type TaskEvent, TaskEventSchema, TaskSchema } from "../../../gen/agentd/v1/task_pb.js";
import type { StoredEvent } from "../model/change.js";
import type { TaskRow } from "../model/task.js";
import { taskJson } from "./task-json.js";

export function toTask(row: TaskRow): Task {
  return fromJson(TaskSchema, taskJson(row));
}

/** A stored event in the proto3 JSON shape of a TaskEvent, as input to `fromJson`. Not canonical
 * output (it keeps zero values and unrounded floats): SSE sends `toJson` of the message instead
 * (event-forms.ts). */
export function eventJson(taskId: string, event: StoredEvent): { [k: string]: JsonValue } {
  return {
    taskId,
    sequence: String(event.sequence),
    time: event.time.toISOString(),
    [event.kind]: event.data,
    ...(event.actor ? { actor: event.actor } : {}),
  };
}

export function toTaskEvent(taskId: string, event: StoredEvent): TaskEvent {
  return fromJson(TaskEventSchema, eventJson(taskId, event));
}

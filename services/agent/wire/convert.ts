// Between stored rows and protobuf messages. A task is built field by field (it is converted for
// every answer and snapshot, and a proto3 JSON round trip of the whole task cost a string
// formatting and parsing pass per timestamp); its JSON-shaped parts (input, output, error,
// progress, input request, artifacts) are parsed from the stored proto3 JSON as they are.
// test/wire/convert.test.ts keeps `toTask` equal to `fromJson(TaskSchema, taskJson(row))`, the
// form clients, webhooks and snapshots see.
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  ArtifactSchema,
  InputRequestSchema,
  ProgressSchema,
  type Task,
  TaskErrorSchema,
  type TaskEvent,
  TaskEventSchema,
  TaskSchema,
  TaskState,
} from "../../../gen/agentd/v1/task_pb.js";
import type { StoredEvent } from "../model/change.js";
import type { TaskRow } from "../model/task.js";

export function toTask(row: TaskRow): Task {
  return create(TaskSchema, {
    id: row.task_id,
    agent: row.agent,
    agentVersion: row.agent_version,
    state: TaskState[row.state],
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    lastSequence: BigInt(row.last_sequence),
    createTime: timestampFromDate(row.create_time),
    updateTime: timestampFromDate(row.update_time),
    timeout: durationFromMs(Number(row.timeout_ms)),
    labels: row.labels,
    requestId: row.request_id ?? "",
    input: row.input !== null ? fromJson(ValueSchema, row.input) : undefined,
    // As in taskJson: an output only on success, an error only on failure, a question only while asked.
    output: row.output !== null && row.state === "SUCCEEDED" ? fromJson(ValueSchema, row.output) : undefined,
    error: row.error !== null && row.state === "FAILED" ? fromJson(TaskErrorSchema, row.error) : undefined,
    progress: row.progress !== null ? fromJson(ProgressSchema, row.progress) : undefined,
    inputRequest:
      row.input_request !== null && row.state === "INPUT_REQUIRED"
        ? fromJson(InputRequestSchema, row.input_request)
        : undefined,
    startTime: row.start_time !== null ? timestampFromDate(row.start_time) : undefined,
    endTime: row.end_time !== null ? timestampFromDate(row.end_time) : undefined,
    artifacts: row.artifacts.map((artifact) => fromJson(ArtifactSchema, artifact)),
  });
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

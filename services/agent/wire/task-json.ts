// The proto3 JSON form of a task (`agentd.v1.Task`): what clients, webhooks and
// state_change snapshots see. It is computed here and nowhere else.
import type { JsonObject } from "@bufbuild/protobuf";
import { isTerminal, type TaskRow } from "../model/task.js";

function duration(ms: number): string {
  return `${ms / 1000}s`;
}

/** proto3 JSON of `agentd.v1.Task`. Unset fields are omitted, as proto3 JSON does. */
export function taskJson(row: TaskRow): JsonObject {
  const json: JsonObject = {
    id: row.task_id,
    agent: row.agent,
    agentVersion: row.agent_version,
    state: `TASK_STATE_${row.state}`,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    lastSequence: String(Number(row.last_sequence)),
    createTime: row.create_time.toISOString(),
    updateTime: row.update_time.toISOString(),
    timeout: duration(Number(row.timeout_ms)),
  };
  if (row.input !== null) json.input = row.input;
  if (row.output !== null && row.state === "SUCCEEDED") json.output = row.output;
  if (row.error !== null && row.state === "FAILED") json.error = row.error;
  if (row.progress !== null) json.progress = row.progress;
  if (row.input_request !== null && row.state === "INPUT_REQUIRED") json.inputRequest = row.input_request;
  if (Object.keys(row.labels).length > 0) json.labels = row.labels;
  if (row.request_id !== null) json.requestId = row.request_id;
  if (row.start_time !== null) json.startTime = row.start_time.toISOString();
  if (row.end_time !== null) json.endTime = row.end_time.toISOString();
  if (row.artifacts.length > 0) json.artifacts = row.artifacts;
  return json;
}

/**
 * The `task` of a state_change event (`StateChange.task`): the task right after
 * the change, without repeating what the log already holds. A task changes state
 * many times (queued, running, input required, queued again, retries…), and
 * repeating its input, output and artifacts in each event multiplied a large
 * request many times over in storage and in every stream. The rule:
 * - `input` only in the first event (sequence 1, the creation);
 * - `output` (SUCCEEDED only) and `artifacts` only in the terminal event;
 * - every other field as in `taskJson`, in every event.
 * So the log holds about one copy of each; `GetTask` has the whole task at any time.
 */
export function stateChangeSnapshot(row: TaskRow, sequence: number): JsonObject {
  const json = taskJson({ ...row, last_sequence: sequence });
  if (sequence !== 1) delete json.input;
  if (!isTerminal(row.state)) {
    delete json.output;
    delete json.artifacts;
  }
  return json;
}

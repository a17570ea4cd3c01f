// The proto3 JSON form of a task (`agentd.v1.Task`): what clients, webhooks and
// state_change snapshots see. It is computed here and nowhere else.
import type { JsonObject } from "@bufbuild/protobuf";
import { isTerminal, type TaskRow } from "../model/task.js";

function duration(ms: number): string {
  return `${ms / 1000}s`;
}

/** proto3 JSON of `agentd.v1.Task`. Unset fields are omitted, as proto3 JSON does. */
export function taskJson(row: TaskRow): JsonObject {
  return buildTaskJson(row, row.last_sequence, true, true);
}

/** taskJson with `lastSequence` given, and `input`, `output` and `artifacts` only where asked. */
function buildTaskJson(
  row: TaskRow,
  lastSequence: TaskRow["last_sequence"],
  withInput: boolean,
  withResults: boolean,
): JsonObject {
  const json: JsonObject = {
    id: row.task_id,
    agent: row.agent,
    agentVersion: row.agent_version,
    state: `TASK_STATE_${row.state}`,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    lastSequence: String(Number(lastSequence)),
    createTime: row.create_time.toISOString(),
    updateTime: row.update_time.toISOString(),
    timeout: duration(Number(row.timeout_ms)),
  };
  if (withInput && row.input !== null) json.input = row.input;
  if (withResults && row.output !== null && row.state === "SUCCEEDED") json.output = row.output;
  if (row.error !== null && row.state === "FAILED") json.error = row.error;
  if (row.progress !== null) json.progress = row.progress;
  if (row.input_request !== null && row.state === "INPUT_REQUIRED") json.inputRequest = row.input_request;
  if (Object.keys(row.labels).length > 0) json.labels = row.labels;
  if (row.request_id !== null) json.requestId = row.request_id;
  if (row.start_time !== null) json.startTime = row.start_time.toISOString();
  if (row.end_time !== null) json.endTime = row.end_time.toISOString();
  if (withResults && row.artifacts.length > 0) json.artifacts = row.artifacts;
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
  // Built without the fields rather than copied and deleted from: a copy of the row and deletes
  // (which leave the object slow to read and to serialize) were most of an accepted task's JSON work.
  return buildTaskJson(row, sequence, sequence === 1, isTerminal(row.state));
}

// A task as stored (a row of `tasks`): its states and its key. Its proto3 JSON
// form is in wire/task-json.ts.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

export const TASK_STATES = ["QUEUED", "RUNNING", "INPUT_REQUIRED", "SUCCEEDED", "FAILED", "CANCELED"] as const;
export type TaskStateName = (typeof TASK_STATES)[number];
export const TERMINAL_STATES: readonly TaskStateName[] = ["SUCCEEDED", "FAILED", "CANCELED"];

export function isTerminal(state: TaskStateName): boolean {
  return TERMINAL_STATES.includes(state);
}

/** A state as proto3 JSON names it (`agentd.v1.TaskState`), e.g. in a state_change event. */
export type TaskStateJsonName = `TASK_STATE_${TaskStateName}`;

/** RUNNING for TASK_STATE_RUNNING. */
export function stateOfJsonName(name: TaskStateJsonName): TaskStateName {
  return name.slice("TASK_STATE_".length) as TaskStateName;
}

/** A row of `tasks`. jsonb columns come back parsed; int8 columns may come back
 * as strings, so readers go through `Number()`. */
export interface TaskRow {
  tenant_id: string;
  task_id: string;
  agent: string;
  agent_version: string;
  state: TaskStateName;
  input: JsonValue | null;
  output: JsonValue | null;
  error: JsonObject | null;
  progress: JsonObject | null;
  input_request: JsonObject | null;
  labels: Record<string, string>;
  artifacts: JsonObject[];
  webhook: JsonObject | null;
  request_id: string | null;
  request_fingerprint: string | null;
  attempt: number;
  max_attempts: number;
  timeout_ms: number | string;
  last_sequence: number | string;
  create_time: Date;
  start_time: Date | null;
  end_time: Date | null;
  update_time: Date;
  run_after: Date;
  lease_owner: string | null;
  lease_id: string | null;
  lease_expires_at: Date | null;
  checkpoint: JsonValue | null;
  pending_input: JsonValue | null;
  /** When the pending input request expires (INPUT_REQUIRED only); null: never. */
  input_expires_at: Date | null;
  /** request_ids of the answers applied so far (newest last, bounded). */
  input_answer_ids: string[];
  /** W3C traceparent of the RPC that created the task (tracing on), so a run on any replica joins its trace. */
  trace_parent?: string | null;
}

export interface TaskKey {
  tenantId: string;
  taskId: string;
}

// Turning a validated request into a new task row, and the fingerprint that
// makes idempotency keys safe: the same request_id with another request is refused.
import { createHash } from "node:crypto";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { newId } from "../../shared/ids.js";
import type { TaskRow } from "../model/task.js";

export interface NewTask {
  agent: string;
  input: JsonValue;
  requestId: string | null;
  labels: Record<string, string>;
  timeoutMs: number;
  maxAttempts: number;
  webhook: JsonObject | null;
  /** The webhook's URL as parsed at the edge, for the registration check; neither stored nor fingerprinted. */
  webhookUrl?: URL;
}

/** JSON with object keys sorted, so equal values hash equally. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}

/** `kind` separates Run-started from CreateTask-started tasks: the same key for both is a conflict. */
export function requestFingerprint(kind: "run" | "task", request: NewTask): string {
  const { requestId: _ignored, webhookUrl: _parsed, ...rest } = request;
  return createHash("sha256")
    .update(canonical({ kind, ...rest }))
    .digest("hex");
}

export function newTaskRow(
  tenantId: string,
  agentVersion: string,
  request: NewTask,
  fingerprint: string,
  now: Date,
): TaskRow {
  return {
    tenant_id: tenantId,
    task_id: newId(),
    agent: request.agent,
    agent_version: agentVersion,
    state: "QUEUED",
    input: request.input,
    output: null,
    error: null,
    progress: null,
    input_request: null,
    labels: request.labels,
    artifacts: [],
    webhook: request.webhook,
    request_id: request.requestId,
    request_fingerprint: request.requestId ? fingerprint : null,
    attempt: 0,
    max_attempts: request.maxAttempts,
    timeout_ms: request.timeoutMs,
    last_sequence: 0,
    create_time: now,
    start_time: null,
    end_time: null,
    update_time: now,
    run_after: now,
    lease_owner: null,
    lease_id: null,
    lease_expires_at: null,
    checkpoint: null,
    pending_input: null,
    input_expires_at: null,
    input_answer_ids: [],
  };
}

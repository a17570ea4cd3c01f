// Edge validation of request fields: every problem becomes one field violation,
// reported together as INVALID_ARGUMENT. Limits are documented in the protos.
// Each id, enum and URL of a request is parsed here, once.
import { type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { type Duration, type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { TaskState } from "../../../gen/agentd/v1/task_pb.js";
import { type FieldViolation, invalidArgument, notFound } from "../../shared/errors.js";
import { parseId } from "../../shared/ids.js";
import { TASK_STATES, type TaskStateName } from "../model/task.js";
import { WEBHOOK_EVENT_TYPES } from "../outbox/event-types.js";
import type { NewTask } from "../tasks/new-task.js";

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const MAX_TIMEOUT_MS = 24 * 3600_000;
const DEFAULT_MAX_ATTEMPTS = 3;
const MAX_ATTEMPTS = 10;

export class Violations {
  readonly list: FieldViolation[] = [];
  add(field: string, description: string, reason?: string): void {
    this.list.push(reason === undefined ? { field, description } : { field, description, reason });
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw invalidArgument(this.list);
  }
}

/** Nesting depth of a JSON value, stopping early once past `limit`. */
function jsonDepth(value: JsonValue, limit: number): number {
  let deepest = 0;
  const stack: [JsonValue, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    deepest = Math.max(deepest, depth);
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

export function durationMs(d: Duration): number {
  return Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
}

function parseJsonInput(v: Violations, field: string, value: Value | undefined, maxDepth: number): JsonValue {
  if (!value) return {};
  let json: JsonValue;
  try {
    json = toJson(ValueSchema, value);
  } catch {
    // The input interceptor refuses such Values first (request-check.ts); this keeps any other path safe.
    v.add(field, "is not a JSON value (a Value with no kind, NaN or Infinity)", "INVALID_VALUE");
    return {};
  }
  if (jsonDepth(json, maxDepth) > maxDepth) v.add(field, `is nested deeper than ${maxDepth} levels`, "INPUT_TOO_DEEP");
  return json;
}

export function parseRequestId(v: Violations, requestId: string): string | null {
  if (requestId === "") return null;
  if (requestId.length > 200) v.add("request_id", "must be at most 200 characters");
  else if ([...requestId].some((c) => c.charCodeAt(0) < 0x20))
    v.add("request_id", "must not contain control characters");
  return requestId;
}

export function parseLabels(v: Violations, labels: Record<string, string>, field = "labels"): Record<string, string> {
  const entries = Object.entries(labels);
  if (entries.length > 64) v.add(field, "must have at most 64 labels");
  for (const [key, value] of entries) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._\-/]{0,62}$/.test(key)) {
      v.add(
        `${field}[${key}]`,
        "key must be 1-63 characters: letters, digits, '.', '_', '-', '/', starting with a letter or digit",
      );
    }
    if (value.length > 256) v.add(`${field}[${key}]`, "value must be at most 256 characters");
  }
  return labels;
}

function parseTimeout(v: Violations, timeout: Duration | undefined): number {
  if (!timeout) return DEFAULT_TIMEOUT_MS;
  const ms = durationMs(timeout);
  if (ms <= 0) v.add("timeout", "must be positive");
  else if (ms > MAX_TIMEOUT_MS) v.add("timeout", "must be at most 24h");
  return ms;
}

function parseMaxAttempts(v: Violations, maxAttempts: number): number {
  if (maxAttempts === 0) return DEFAULT_MAX_ATTEMPTS;
  if (maxAttempts < 1 || maxAttempts > MAX_ATTEMPTS) v.add("max_attempts", `must be between 1 and ${MAX_ATTEMPTS}`);
  return maxAttempts;
}

export function parseEventTypes(v: Violations, field: string, types: string[]): string[] {
  for (const [i, type] of types.entries()) {
    if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(type)) {
      v.add(`${field}[${i}]`, `unknown event type "${type}"; known: ${WEBHOOK_EVENT_TYPES.join(", ")}`);
    }
  }
  return [...new Set(types)];
}

/** A per-task webhook as stored, and its URL parsed once, for the registration check (tasks/create-task.ts). */
function parseWebhook(
  v: Violations,
  webhook: { url: string; eventTypes: string[] } | undefined,
): { webhook: JsonObject; url?: URL } | null {
  if (!webhook) return null;
  let url: URL | undefined;
  try {
    url = new URL(webhook.url);
  } catch {
    v.add("webhook.url", "must be an absolute http(s) URL");
  }
  if (url && url.protocol !== "https:" && url.protocol !== "http:") v.add("webhook.url", "must be an http(s) URL");
  const eventTypes = parseEventTypes(v, "webhook.event_types", webhook.eventTypes);
  return { webhook: { url: webhook.url, eventTypes }, ...(url ? { url } : {}) };
}

export interface TaskRequestFields {
  agent: string;
  input?: Value;
  requestId: string;
  labels: Record<string, string>;
  timeout?: Duration;
  maxAttempts?: number;
  webhook?: { url: string; eventTypes: string[] };
}

/** The fields shared by CreateTask, Run, RunStream and Converse start. */
export function parseNewTask(req: TaskRequestFields, limits: { maxInputDepth: number }): NewTask {
  const v = new Violations();
  if (req.agent === "") v.add("agent", "is required");
  else if (req.agent.length > 100) v.add("agent", "must be at most 100 characters");
  const input = parseJsonInput(v, "input", req.input, limits.maxInputDepth);
  const requestId = parseRequestId(v, req.requestId);
  const labels = parseLabels(v, req.labels);
  const timeoutMs = parseTimeout(v, req.timeout);
  const maxAttempts = parseMaxAttempts(v, req.maxAttempts ?? 0);
  const webhook = parseWebhook(v, req.webhook);
  v.throwIfAny();
  return {
    agent: req.agent,
    input,
    requestId,
    labels,
    timeoutMs,
    maxAttempts,
    webhook: webhook?.webhook ?? null,
    ...(webhook?.url ? { webhookUrl: webhook.url } : {}),
  };
}

/** An id from a request (of a task, endpoint, delivery): empty is INVALID_ARGUMENT; anything that cannot
 * name a `kind` is NOT_FOUND. Returns its stored (lower-case) form. */
export function parseIdField(value: string, field: string, kind: string): string {
  if (value === "") throw invalidArgument([{ field, description: "is required" }]);
  const id = parseId(value);
  if (id === null) throw notFound(kind, value);
  return id;
}

/** An id filter: empty means none (null); otherwise as `parseIdField`. */
export function parseOptionalIdField(value: string, field: string, kind: string): string | null {
  return value === "" ? null : parseIdField(value, field, kind);
}

/**
 * A repeated enum field as the names of its values, each once. A value that is not one of `allowed`
 * (UNSPECIFIED, or a number this server does not know) is a violation: "states[1]: is not a task state (9)".
 */
export function parseEnumNames<N extends string>(
  values: readonly number[],
  names: Readonly<Record<number, string>>,
  allowed: readonly N[],
  what: string,
  field = "states",
): N[] {
  const v = new Violations();
  const parsed = values.map((value, i) => {
    const name = names[value] as N | undefined;
    if (!name || !allowed.includes(name)) v.add(`${field}[${i}]`, `is not a ${what} (${value})`);
    return name!;
  });
  v.throwIfAny();
  return [...new Set(parsed)];
}

/** ListTasks' filter (its keys also make the page token's query). */
export function parseTaskFilter(req: { states: TaskState[]; agent: string; labels: Record<string, string> }): {
  states: TaskStateName[];
  agent: string;
  labels: Record<string, string>;
} {
  const states = parseEnumNames(req.states, TaskState, TASK_STATES, "task state");
  const v = new Violations();
  const labels = parseLabels(v, req.labels);
  v.throwIfAny();
  return { states, agent: req.agent, labels };
}

/** WaitTask's timeout in ms: `defaults.default` when unset, capped at `defaults.max`; negative is INVALID_ARGUMENT. */
export function parseWaitTimeout(timeout: Duration | undefined, defaults: { default: number; max: number }): number {
  const ms = timeout ? durationMs(timeout) : defaults.default;
  if (ms < 0) throw invalidArgument([{ field: "timeout", description: "must not be negative" }]);
  return Math.min(ms, defaults.max);
}

export function parsePageSize(
  pageSize: number,
  defaults: { default: number; max: number },
  field = "page_size",
): number {
  if (pageSize < 0) throw invalidArgument([{ field, description: "must not be negative" }]);
  if (pageSize === 0) return defaults.default;
  return Math.min(pageSize, defaults.max);
}

/** A resume cursor (`after_sequence`): 0 or a sequence; negative is INVALID_ARGUMENT. */
export function parseAfterSequence(value: bigint, field = "after_sequence"): number {
  if (value < 0n) throw invalidArgument([{ field, description: "must not be negative" }]);
  if (value > BigInt(Number.MAX_SAFE_INTEGER))
    throw invalidArgument([{ field, description: "is larger than any sequence" }]);
  return Number(value);
}

/** An answer to an input request: required (a JSON null is sent as a Value holding null). */
function parseAnswer(value: Value | undefined, field: string, maxDepth: number): JsonValue {
  const v = new Violations();
  if (!value) v.add(field, "is required (a JSON value; null is sent as a Value holding null)");
  const json = value ? parseJsonInput(v, field, value, maxDepth) : null;
  v.throwIfAny();
  return json;
}

/** ProvideInput's (or Converse input's) answer with its request_id; the request_id's problems are reported first. */
export function parseInputAnswer(
  req: { requestId: string; value?: Value | undefined },
  valueField: string,
  maxDepth: number,
): { value: JsonValue; requestId: string | null } {
  const v = new Violations();
  const requestId = parseRequestId(v, req.requestId);
  v.throwIfAny();
  return { value: parseAnswer(req.value, valueField, maxDepth), requestId };
}

// The task state machine as pure decisions: each takes the locked current task
// and returns the change to write (or null for nothing to do). The writer
// applies them; nothing here does I/O, so every rule is testable alone.
import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import type { Decide, EventDraft, TaskChange, TaskPatch } from "../model/change.js";
import { isTerminal } from "../model/task.js";

/** The patch that ends a runner's claim. Every transition out of RUNNING uses it. */
const noLease: TaskPatch = { lease_owner: null, lease_id: null, lease_expires_at: null };

export interface TaskErrorJson extends JsonObject {
  code: string;
  message: string;
  retryable: boolean;
}

export function claim(owner: string, leaseMs: number, now = new Date()): Decide {
  return (task) => {
    if (task.state !== "QUEUED") return null;
    return {
      patch: {
        state: "RUNNING",
        attempt: Math.max(task.attempt, 1),
        start_time: task.start_time ?? now,
        lease_owner: owner,
        lease_id: randomUUID(),
        lease_expires_at: new Date(now.getTime() + leaseMs),
      },
    };
  };
}

export function succeed(output: JsonObject[keyof JsonObject], now = new Date()): Decide {
  return () => ({ patch: { state: "SUCCEEDED", output, end_time: now, checkpoint: null, ...noLease } });
}

export function fail(error: TaskErrorJson, now = new Date()): Decide {
  return () => ({ patch: { state: "FAILED", error, end_time: now, ...noLease } });
}

/** Idempotent: a task that has ended stays as it is. */
export function cancel(now = new Date()): Decide {
  return (task) => {
    if (isTerminal(task.state)) return null;
    return { patch: { state: "CANCELED", end_time: now, input_request: null, input_expires_at: null, ...noLease } };
  };
}

/** The runner of the current attempt vanished (its lease expired): retry with
 * backoff, or fail once the attempts are used up. */
export function requeueLost(backoffMs: (attempt: number) => number, now = new Date()): Decide {
  return (task) => {
    if (task.state !== "RUNNING" || task.lease_owner === null) return null;
    const log: EventDraft = {
      kind: "log",
      data: { level: "warn", message: `attempt ${task.attempt} lost: its runner stopped renewing the lease` },
    };
    if (task.attempt >= task.max_attempts) {
      return {
        patch: {
          state: "FAILED",
          error: {
            code: "ATTEMPTS_EXHAUSTED",
            message: `the task's runner was lost on all ${task.max_attempts} attempts`,
            retryable: true,
          },
          end_time: now,
          ...noLease,
        },
        events: [log],
      };
    }
    return {
      patch: {
        state: "QUEUED",
        attempt: task.attempt + 1,
        run_after: new Date(now.getTime() + backoffMs(task.attempt)),
        ...noLease,
      },
      events: [log],
      retry: "lease_lost",
    };
  };
}

/** Graceful shutdown: give the task back to the queue without costing an attempt. */
export function handBack(now = new Date()): Decide {
  return (task) => {
    if (task.state !== "RUNNING") return null;
    return {
      patch: { state: "QUEUED", run_after: now, ...noLease },
      events: [{ kind: "log", data: { level: "info", message: "runner shut down; task handed back to the queue" } }],
      retry: "shutdown",
    };
  };
}

/** Appends events and, optionally, projection fields, without a state change. */
export function record(events: EventDraft[], patch: TaskPatch = {}): Decide {
  return (): TaskChange => ({ patch, events });
}

/** Exponential backoff for retried attempts: base · 2^(attempt-1), capped at 5 min, ±20 % jitter. */
export function retryBackoff(baseMs: number, random: () => number = Math.random): (attempt: number) => number {
  return (attempt) => {
    const raw = Math.min(baseMs * 2 ** Math.max(0, attempt - 1), 300_000);
    return Math.round(raw * (0.8 + 0.4 * random()));
  };
}

/** The agent asked for input: pause without holding a runner (nor any memory:
 * the agent resumes from its checkpoint when the answer comes). An `expireTime`
 * in the request arms the expiry sweep (`expireInput`). */
export function pause(inputRequest: JsonObject): Decide {
  const expireTime = typeof inputRequest.expireTime === "string" ? new Date(inputRequest.expireTime) : null;
  return () => ({
    patch: {
      state: "INPUT_REQUIRED",
      input_request: inputRequest,
      pending_input: null,
      input_expires_at: expireTime,
      ...noLease,
    },
    events: [{ kind: "inputRequest", data: inputRequest }],
  });
}

/** How many answer request_ids a task remembers: enough for any conversation, bounded per row. */
export const MAX_REMEMBERED_ANSWERS = 100;

/** An answer arrived: queue the task again; the next attempt's agent receives it.
 * `requestId` (optional) is remembered so that a repeat is recognised. */
export function answer(value: JsonObject[keyof JsonObject], requestId: string | null = null, now = new Date()): Decide {
  return (task) => {
    if (task.state !== "INPUT_REQUIRED") return null;
    const ids =
      requestId === null ? task.input_answer_ids : [...task.input_answer_ids, requestId].slice(-MAX_REMEMBERED_ANSWERS);
    return {
      // Wrapped, so that a JSON null answer is not mistaken for "no answer".
      patch: {
        state: "QUEUED",
        pending_input: { value },
        input_request: null,
        input_expires_at: null,
        input_answer_ids: ids,
        run_after: now,
      },
    };
  };
}

/** Nobody answered in time: the task fails with INPUT_TIMEOUT. The sweep passes
 * `checkTime: false`: it selected the row by the database's clock, which wins. */
export function expireInput(now = new Date(), opts: { checkTime?: boolean } = {}): Decide {
  return (task) => {
    const expiresAt = task.input_expires_at;
    if (task.state !== "INPUT_REQUIRED" || expiresAt === null) return null;
    if (opts.checkTime !== false && expiresAt.getTime() > now.getTime()) return null;
    return {
      patch: {
        state: "FAILED",
        error: {
          code: "INPUT_TIMEOUT",
          message: `the input request was not answered before it expired at ${expiresAt.toISOString()}`,
          retryable: false,
        },
        end_time: now,
        input_request: null,
        input_expires_at: null,
      },
    };
  };
}

// One attempt of a claimed task (DESIGN.md rule 4): run its agent under the task's
// timeout, decide from what the agent did how the attempt ends, and write that end
// fenced by the attempt's lease. The loops that claim, heartbeat and sweep are in
// task-runner.ts; an attempt knows of them only the signals that stop it.
import { setTimeout as delay } from "node:timers/promises";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { FieldViolation } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";
import { isAgentFailure, isInputRequired } from "../agents/agent.js";
import type { AgentRegistry } from "../agents/registry.js";
import type { Decide } from "../model/change.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import type { TaskWriter } from "../store/task-writer.js";
import { schemaProblem } from "../tasks/answer-schema.js";
import { fail, pause, succeed, type TaskErrorJson } from "../tasks/transitions.js";
import { schemaObject } from "../wire/schema-object.js";
import { createAgentContext, type HeldTask, LeaseLost } from "./agent-context.js";
import type { OutcomeJournal } from "./outcome-journal.js";
import { handBackAfterOutage, isStoreUnavailable } from "./store-outage.js";

/** Why an attempt's signal fired. */
export class AttemptTimeout extends Error {
  override name = "TimeoutError";
}
export class TaskCanceled extends Error {
  override name = "AbortError";
}
export class RunnerShutdown extends Error {
  override name = "AbortError";
}
class StoreOutage extends Error {
  override name = "AbortError";
}

export interface AttemptDeps {
  writer: TaskWriter;
  registry: AgentRegistry;
  logger: Logger;
  findTask: (key: TaskKey) => Promise<TaskRow | undefined>;
  deltaWindowMs: number;
  /** Fires when the runner stops: the end of an attempt is then no longer retried through an outage. */
  stopping: AbortSignal;
  /** Remembers recorded outcomes, to write them again after a failover that lost their commit. */
  journal: OutcomeJournal;
}

/** What the agent's run came to. */
export type Outcome = { ok: true; output: unknown } | { ok: false; error: unknown } | { aborted: true };

/** How an attempt ends, decided from its outcome alone (see `endingOf`). */
export type Ending =
  /** Cancelled, lease lost, or shutting down: someone else owns the outcome now. */
  | { end: "elsewhere" }
  | { end: "timeout"; error: TaskErrorJson }
  /** `thrown`: the agent's own error, when it failed by throwing one. */
  | { end: "failed"; error: TaskErrorJson; thrown?: unknown }
  | { end: "paused"; prompt: string; schema: JsonObject; expiresInMs?: number }
  | { end: "succeeded"; output: JsonValue };

/** Waits between tries of an attempt's last write while the store is unreachable. */
const SETTLE_RETRY_MIN_MS = 100;
const SETTLE_RETRY_MAX_MS = 1000;

/**
 * Runs the agent of `task` (claimed by this runner) until it ends or `controller` stops it, writes
 * how the attempt ended, and resolves with the task as the attempt left it. `agentEnded` is called
 * once the agent's own work is over (it returned, threw, or was left behind), before that write.
 */
export async function runAttempt(
  deps: AttemptDeps,
  task: TaskRow,
  controller: AbortController,
  agentEnded: () => void = () => {},
): Promise<TaskRow> {
  const held: HeldTask = { row: task };
  const log = deps.logger.child({
    taskId: task.task_id,
    tenant: task.tenant_id,
    attempt: task.attempt,
    agent: task.agent,
  });
  // The version the task was created for runs it, even when a newer one is loaded too.
  const ref = `${task.agent}@${task.agent_version}`;
  const agent = deps.registry.get(ref);
  if (!agent) {
    return finish(
      deps,
      held,
      fail({ code: "AGENT_UNAVAILABLE", message: `agent "${ref}" is not loaded on this runner`, retryable: true }),
    );
  }
  const timer = setTimeout(
    () => controller.abort(new AttemptTimeout(`the attempt ran past its timeout of ${Number(task.timeout_ms)} ms`)),
    Number(task.timeout_ms),
  );
  const { context, flush } = createAgentContext({
    task,
    held,
    fence: { leaseId: task.lease_id! },
    writer: deps.writer,
    signal: controller.signal,
    deltaWindowMs: deps.deltaWindowMs,
    onLeaseLost: () => controller.abort(new TaskCanceled("this attempt no longer holds the task")),
    onStoreUnavailable: (err) => {
      storeError ??= err;
      controller.abort(new StoreOutage("the task store became unavailable"));
    },
    onWriteError: (err) => log.warn({ err }, "could not write streamed output"),
  });
  // Set when a context write found the store unreachable: whatever the agent did
  // next (failed with it, wrapped it, swallowed it) the attempt is not its failure.
  let storeError: unknown;
  const abandon = () => {
    log.warn({ err: storeError }, "attempt stopped: the task store is unavailable; the task will be queued again");
    return finish(deps, held, handBackAfterOutage());
  };
  const aborted = new Promise<{ aborted: true }>((resolve) => {
    if (controller.signal.aborted) resolve({ aborted: true });
    controller.signal.addEventListener("abort", () => resolve({ aborted: true }), { once: true });
  });
  let outcome: Outcome;
  try {
    // An agent that ignores its signal is left behind: the race ends the attempt anyway,
    // and whatever it returns later is discarded.
    outcome = await Promise.race([
      Promise.resolve()
        .then(() => agent.run(task.input ?? {}, context))
        .then((output: unknown) => ({ ok: true as const, output })),
      aborted,
    ]);
  } catch (error) {
    outcome = controller.signal.aborted ? { aborted: true } : { ok: false, error };
  } finally {
    clearTimeout(timer);
    agentEnded();
  }

  if (storeError !== undefined) return abandon();
  const ending = endingOf(outcome, controller.signal.reason, (output) => deps.registry.validateOutput(ref, output));
  if (ending.end === "elsewhere") return reread(deps, task);
  // What the agent streamed goes to the log before its end. After a timeout that is best
  // effort; otherwise a flush that fails means the attempt no longer holds the task.
  const flushed = await flush().then(
    () => true,
    () => false,
  );
  if (storeError !== undefined && (!flushed || ending.end === "timeout")) return abandon();
  if (!flushed && ending.end !== "timeout") return reread(deps, task);
  if (ending.end === "failed" && "thrown" in ending) log.info({ err: ending.thrown }, "agent failed");
  return finish(deps, held, decisionOf(ending));
}

/** How the attempt ends, from the agent's outcome and, when it was stopped, the reason its signal fired. */
export function endingOf(
  outcome: Outcome,
  reason: unknown,
  validateOutput: (output: JsonValue) => FieldViolation[],
): Ending {
  if ("aborted" in outcome) {
    if (reason instanceof AttemptTimeout)
      return { end: "timeout", error: { code: "TIMEOUT", message: reason.message, retryable: true } };
    return { end: "elsewhere" };
  }
  if (!outcome.ok) {
    const error = outcome.error;
    if (error instanceof LeaseLost) return { end: "elsewhere" };
    if (!isInputRequired(error)) return { end: "failed", error: errorOf(error), thrown: error };
    const schema = schemaObject(error.request.schema);
    const problem = schemaProblem(schema);
    if (problem !== undefined) {
      const message = `the agent asked for input with a JSON Schema that cannot be applied: ${problem}`;
      return { end: "failed", error: { code: "AGENT_ERROR", message, retryable: false } };
    }
    const { prompt, expiresInMs } = error.request;
    return { end: "paused", prompt, schema, ...(expiresInMs !== undefined ? { expiresInMs } : {}) };
  }
  const output = (outcome.output ?? null) as JsonValue;
  const violations = validateOutput(output);
  if (violations.length > 0) {
    const message = `the agent's output does not match its schema: ${violations.map((v) => `${v.field} ${v.description}`).join("; ")}`;
    return { end: "failed", error: { code: "INVALID_OUTPUT", message, retryable: false } };
  }
  return { end: "succeeded", output };
}

/** The task error of an agent that threw. */
function errorOf(error: unknown): TaskErrorJson {
  if (isAgentFailure(error)) {
    const json: TaskErrorJson = { code: error.code, message: error.message, retryable: error.retryable };
    if (error.details && typeof error.details === "object" && !Array.isArray(error.details)) {
      json.details = error.details as JsonObject;
    }
    return json;
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: "AGENT_ERROR", message: message || "the agent failed", retryable: false };
}

/** The write of an ending; made when it is written (an input request's expiry counts from then). */
function decisionOf(ending: Exclude<Ending, { end: "elsewhere" }>): Decide {
  switch (ending.end) {
    case "timeout":
    case "failed":
      return fail(ending.error);
    case "paused": {
      const request: JsonObject = { prompt: ending.prompt, schema: ending.schema };
      if (ending.expiresInMs !== undefined)
        request.expireTime = new Date(Date.now() + ending.expiresInMs).toISOString();
      return pause(request);
    }
    case "succeeded":
      return succeed(ending.output);
  }
}

/**
 * Writes the end of an attempt; must not throw. While the store is unreachable the
 * write is tried again until it answers (the attempt keeps its lease meanwhile, so
 * the heartbeat renews it once the database is back): an outage never turns into a
 * lost outcome or a charged attempt. Fenced by the lease, so a write that did commit
 * before the connection dropped is simply not applied twice. Any other failure is
 * left to the lease: it expires and the sweeper retries the task.
 */
async function finish(deps: AttemptDeps, held: HeldTask, decide: Decide): Promise<TaskRow> {
  const log = deps.logger.child({ taskId: held.row.task_id, tenant: held.row.tenant_id });
  let waitMs = SETTLE_RETRY_MIN_MS;
  for (let tries = 1; ; tries++) {
    try {
      const result = await deps.writer.changeHeld(held.row, decide, { leaseId: held.row.lease_id! });
      if (result.status === "changed") deps.journal.record(held.row, decide);
      if (tries > 1) log.info({ tries }, "recorded the end of an attempt once the store answered again");
      return result.status === "missing" ? held.row : result.task;
    } catch (error) {
      if (!isStoreUnavailable(error) || deps.stopping.aborted) {
        log.error(
          { err: error },
          "could not record the end of an attempt; its lease will expire and the task be retried",
        );
        return reread(deps, held.row);
      }
      if (tries === 1)
        log.warn({ err: error }, "the store is unavailable; will record the end of the attempt when it is back");
    }
    await delay(waitMs);
    waitMs = Math.min(waitMs * 2, SETTLE_RETRY_MAX_MS);
  }
}

/** The task as stored now, when this attempt no longer decides its end (or could not write it);
 * `known` when the store cannot say. */
async function reread(deps: AttemptDeps, known: TaskRow): Promise<TaskRow> {
  const key = { tenantId: known.tenant_id, taskId: known.task_id };
  return (await deps.findTask(key).catch(() => undefined)) ?? known;
}

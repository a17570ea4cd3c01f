// The task runner (DESIGN.md rule 4): claims QUEUED tasks with leases, runs
// their agents, heartbeats the leases, and sweeps leases that other runners
// let expire. A unary Run executes here directly through `execute`.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Logger } from "../../shared/log.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import { isAgentFailure, isInputRequired } from "../agents/agent.js";
import type { AgentRegistry } from "../agents/registry.js";
import type { TaskKey, TaskRow } from "../store/task-record.js";
import type { Decide, TaskWriter } from "../store/task-writer.js";
import {
  claim,
  fail,
  handBack,
  pause,
  requeueLost,
  retryBackoff,
  succeed,
  type TaskErrorJson,
} from "../tasks/transitions.js";
import { schemaObject, schemaProblem } from "../tasks/answer-schema.js";
import { createAgentContext, type HeldTask, LeaseLost } from "./agent-context.js";
import { createOutcomeJournal } from "./outcome-journal.js";
import { handBackAfterOutage, isStoreUnavailable } from "./store-outage.js";
import { inRunSpan } from "../observe/task-observer.js";

export interface RunnerOptions {
  /** Unique per process: whose leases these are. */
  owner: string;
  concurrency: number;
  leaseMs: number;
  heartbeatMs: number;
  pollMs: number;
  retryBackoffMs: number;
  deltaWindowMs: number;
}

export interface TaskRunner {
  readonly owner: string;
  /** Starts claiming queued tasks (when concurrency > 0), heartbeating and sweeping. */
  start(): void;
  /** Runs an attempt this runner has claimed; resolves with the task once the attempt has ended. */
  execute(task: TaskRow): Promise<TaskRow>;
  /** Stops the agent of a task running here that was just cancelled in this process. */
  abortLocal(taskId: string): void;
  /** Attempts running now. */
  active(): number;
  /** Stops claiming; lets attempts finish within `graceMs`; hands the rest back to the queue. */
  stop(graceMs: number): Promise<void>;
}

/** Why an attempt's signal fired. */
class AttemptTimeout extends Error {
  override name = "TimeoutError";
}
class TaskCanceled extends Error {
  override name = "AbortError";
}
class RunnerShutdown extends Error {
  override name = "AbortError";
}
class StoreOutage extends Error {
  override name = "AbortError";
}

/** Waits between tries of an attempt's last write while the store is unreachable. */
const SETTLE_RETRY_MIN_MS = 100;
const SETTLE_RETRY_MAX_MS = 1000;

interface Attempt {
  task: TaskRow;
  controller: AbortController;
  done: Promise<TaskRow>;
}

/** Resolves after `ms`, or at once when `signal` fires. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

export function createTaskRunner(deps: {
  writer: TaskWriter;
  registry: AgentRegistry;
  bus: WakeupBus;
  logger: Logger;
  findTask: (key: TaskKey) => Promise<TaskRow | undefined>;
  options: RunnerOptions;
  /** Subscribes to database failovers (the primary moved); optional. */
  failovers?: (listener: () => void) => () => void;
}): TaskRunner {
  const { writer, registry, bus, logger, findTask, options } = deps;
  const byLease = new Map<string, Attempt>();
  const byTask = new Map<string, Attempt>();
  const backoff = retryBackoff(options.retryBackoffMs);
  let started = false;
  let stopping = false;
  const stopped = new AbortController();
  let wakeClaimer: (() => void) | undefined;
  let heartbeatSoon: NodeJS.Timeout | undefined;
  const loops: Promise<void>[] = [];
  const unsubscribe: (() => void)[] = [];
  // Outcomes recorded lately, written again after a failover that lost their commit (outcome-journal.ts).
  const journal = createOutcomeJournal();

  /**
   * Writes the end of an attempt; must not throw. While the store is unreachable the
   * write is tried again until it answers (the attempt keeps its lease meanwhile, so
   * the heartbeat renews it once the database is back): an outage never turns into a
   * lost outcome or a charged attempt. Fenced by the lease, so a write that did commit
   * before the connection dropped is simply not applied twice. Any other failure is
   * left to the lease: it expires and the sweeper retries the task.
   */
  async function finish(held: HeldTask, decide: Decide): Promise<TaskRow> {
    const key = { tenantId: held.row.tenant_id, taskId: held.row.task_id };
    const log = logger.child({ taskId: key.taskId, tenant: key.tenantId });
    let waitMs = SETTLE_RETRY_MIN_MS;
    for (let tries = 1; ; tries++) {
      try {
        const result = await writer.changeHeld(held.row, decide, { leaseId: held.row.lease_id! });
        if (result.status === "changed") journal.record(held.row, decide);
        if (tries > 1) log.info({ tries }, "recorded the end of an attempt once the store answered again");
        return result.status === "missing" ? held.row : result.task;
      } catch (error) {
        if (!isStoreUnavailable(error) || stopping) {
          log.error({ err: error }, "could not record the end of an attempt; its lease will expire and the task be retried");
          return (await findTask(key).catch(() => undefined)) ?? held.row;
        }
        if (tries === 1) log.warn({ err: error }, "the store is unavailable; will record the end of the attempt when it is back");
      }
      await sleep(waitMs);
      waitMs = Math.min(waitMs * 2, SETTLE_RETRY_MAX_MS);
    }
  }

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

  async function runAttempt(task: TaskRow, controller: AbortController): Promise<TaskRow> {
    const held: HeldTask = { row: task };
    const log = logger.child({ taskId: task.task_id, tenant: task.tenant_id, attempt: task.attempt, agent: task.agent });
    // The version the task was created for runs it, even when a newer one is loaded too.
    const ref = `${task.agent}@${task.agent_version}`;
    const agent = registry.get(ref);
    if (!agent) {
      return finish(held, fail({ code: "AGENT_UNAVAILABLE", message: `agent "${ref}" is not loaded on this runner`, retryable: true }));
    }
    const timer = setTimeout(
      () => controller.abort(new AttemptTimeout(`the attempt ran past its timeout of ${Number(task.timeout_ms)} ms`)),
      Number(task.timeout_ms),
    );
    const { context, flush } = createAgentContext({
      task,
      held,
      fence: { leaseId: task.lease_id! },
      writer,
      signal: controller.signal,
      deltaWindowMs: options.deltaWindowMs,
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
      return finish(held, handBackAfterOutage());
    };
    const aborted = new Promise<{ aborted: true }>((resolve) => {
      if (controller.signal.aborted) resolve({ aborted: true });
      controller.signal.addEventListener("abort", () => resolve({ aborted: true }), { once: true });
    });
    let outcome: { ok: true; output: unknown } | { ok: false; error: unknown } | { aborted: true };
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
    }

    if (storeError !== undefined) return abandon();
    if ("aborted" in outcome) {
      const reason = controller.signal.reason;
      if (reason instanceof AttemptTimeout) {
        await flush().catch(() => {});
        if (storeError !== undefined) return abandon();
        return finish(held, fail({ code: "TIMEOUT", message: reason.message, retryable: true }));
      }
      // Cancelled, lease lost, or shutting down: someone else owns the outcome now.
      return (await findTask({ tenantId: task.tenant_id, taskId: task.task_id }).catch(() => undefined)) ?? task;
    }
    if (!outcome.ok) {
      const error = outcome.error;
      if (error instanceof LeaseLost) return (await findTask({ tenantId: task.tenant_id, taskId: task.task_id }).catch(() => undefined)) ?? task;
      try {
        await flush();
      } catch {
        if (storeError !== undefined) return abandon();
        return (await findTask({ tenantId: task.tenant_id, taskId: task.task_id }).catch(() => undefined)) ?? task;
      }
      if (isInputRequired(error)) {
        const schema = schemaObject(error.request.schema);
        const problem = schemaProblem(schema);
        if (problem !== undefined) {
          const message = `the agent asked for input with a JSON Schema that cannot be applied: ${problem}`;
          return finish(held, fail({ code: "AGENT_ERROR", message, retryable: false }));
        }
        const request: JsonObject = { prompt: error.request.prompt, schema };
        if (error.request.expiresInMs !== undefined) {
          request.expireTime = new Date(Date.now() + error.request.expiresInMs).toISOString();
        }
        return finish(held, pause(request));
      }
      log.info({ err: error }, "agent failed");
      return finish(held, fail(errorOf(error)));
    }
    const output = (outcome.output ?? null) as JsonValue;
    const violations = registry.validateOutput(ref, output);
    try {
      await flush();
    } catch {
      if (storeError !== undefined) return abandon();
      return (await findTask({ tenantId: task.tenant_id, taskId: task.task_id }).catch(() => undefined)) ?? task;
    }
    if (violations.length > 0) {
      const message = `the agent's output does not match its schema: ${violations.map((v) => `${v.field} ${v.description}`).join("; ")}`;
      return finish(held, fail({ code: "INVALID_OUTPUT", message, retryable: false }));
    }
    return finish(held, succeed(output));
  }

  function execute(task: TaskRow): Promise<TaskRow> {
    const controller = new AbortController();
    const attempt: Attempt = { task, controller, done: Promise.resolve(task) };
    const started = Date.now();
    attempt.done = inRunSpan(task, () => runAttempt(task, controller))
      .then((row) => {
        const reason: unknown = controller.signal.reason;
        logger.info(
          {
            taskId: task.task_id,
            tenant: task.tenant_id,
            attempt: task.attempt,
            state: row.state,
            ms: Date.now() - started,
            ...(controller.signal.aborted ? { stoppedBy: reason instanceof Error ? reason.message : String(reason) } : {}),
          },
          "attempt ended",
        );
        return row;
      })
      .catch((error) => {
        logger.error({ err: error, taskId: task.task_id }, "attempt crashed");
        return task;
      })
      .finally(() => {
        byLease.delete(task.lease_id!);
        if (byTask.get(task.task_id) === attempt) byTask.delete(task.task_id);
        wakeClaimer?.();
      });
    byLease.set(task.lease_id!, attempt);
    byTask.set(task.task_id, attempt);
    return attempt.done;
  }

  // One heartbeat at a time per process: a beat asked for while one runs is folded into a follow-up.
  let beating: Promise<void> | undefined;
  let beatAgain = false;
  function heartbeat(): Promise<void> {
    if (beating) {
      beatAgain = true;
      return beating;
    }
    beating = (async () => {
      try {
        do {
          beatAgain = false;
          await beat();
        } while (beatAgain);
      } finally {
        beating = undefined;
      }
    })();
    return beating;
  }

  async function beat(): Promise<void> {
    if (byLease.size === 0) return;
    const leases = [...byLease.keys()];
    const held = await writer.extendLeases(options.owner, leases, options.leaseMs);
    for (const leaseId of leases) {
      if (held.has(leaseId)) continue;
      const attempt = byLease.get(leaseId);
      // Cancelled (or swept) elsewhere: stop the agent; its result will be discarded.
      attempt?.controller.abort(new TaskCanceled("the task was cancelled or lost its lease"));
    }
  }

  async function every(ms: number, fn: () => Promise<void>, what: string) {
    while (!stopping) {
      try {
        await fn();
      } catch (error) {
        logger.warn({ err: error }, `${what} failed; will retry`);
      }
      await sleep(ms, stopped.signal);
    }
  }

  async function claimLoop() {
    const claimDecisionFor = () => claim(options.owner, options.leaseMs);
    while (!stopping) {
      const free = options.concurrency - byLease.size;
      let claimed = 0;
      if (free > 0) {
        try {
          const tasks = await writer.claim(Math.min(free, 32), claimDecisionFor());
          claimed = tasks.length;
          for (const task of tasks) void execute(task);
        } catch (error) {
          logger.warn({ err: error }, "claiming tasks failed; will retry");
        }
      }
      if (stopping) break;
      if (claimed > 0 && claimed === Math.min(free, 32)) continue;
      // Wait for a hint (new task, a slot freed) or the poll interval.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, options.pollMs);
        function done() {
          clearTimeout(timer);
          wakeClaimer = undefined;
          resolve();
        }
        wakeClaimer = done;
      });
    }
  }

  return {
    owner: options.owner,
    start() {
      if (started) return;
      started = true;
      unsubscribe.push(
        bus.subscribe("task", (taskId, origin) => {
          // Another process changed a task running here: maybe a cancellation, so check
          // the leases now rather than at the next beat. (This process's own cancels call abortLocal.)
          if (origin !== "remote" || !byTask.has(taskId) || heartbeatSoon) return;
          heartbeatSoon = setTimeout(() => {
            heartbeatSoon = undefined;
            heartbeat().catch((err) => logger.warn({ err }, "lease check failed"));
          }, 5);
        }),
      );
      if (options.concurrency > 0) {
        unsubscribe.push(bus.subscribe("queue", () => wakeClaimer?.()));
        loops.push(claimLoop());
      }
      // After an outage every lease may look expired, though its runner is alive and
      // only could not renew it. So the sweep waits: this runner renews its own leases
      // first, then lets two heartbeat intervals pass for the other runners to do the same.
      let storeWasDown = false;
      let sweepAfter = 0;
      const noteOutage = (error: unknown) => {
        if (isStoreUnavailable(error)) storeWasDown = true;
        throw error;
      };
      // A promotion is an outage too, even if no call of this runner failed during it: heartbeat before any sweep.
      if (deps.failovers) unsubscribe.push(deps.failovers(() => (storeWasDown = true)));
      loops.push(every(options.heartbeatMs, () => heartbeat().catch(noteOutage), "heartbeat"));
      const sweepMs = Math.min(Math.max(Math.floor(options.leaseMs / 3), 100), options.pollMs * 2);
      loops.push(
        every(sweepMs, async () => {
          if (storeWasDown) {
            await heartbeat().catch(noteOutage);
            await journal.reapply(writer, logger).catch(noteOutage);
            storeWasDown = false;
            sweepAfter = Date.now() + 2 * options.heartbeatMs;
          }
          if (Date.now() < sweepAfter) return;
          const swept = await writer.sweepExpiredLeases(100, requeueLost(backoff)).catch(noteOutage);
          for (const task of swept) logger.warn({ taskId: task.task_id, tenant: task.tenant_id, state: task.state }, "requeued a task whose runner was lost");
        }, "lease sweep"),
      );
    },
    execute,
    abortLocal(taskId) {
      byTask.get(taskId)?.controller.abort(new TaskCanceled("the task was cancelled"));
    },
    active: () => byLease.size,
    async stop(graceMs) {
      stopping = true;
      stopped.abort();
      wakeClaimer?.();
      clearTimeout(heartbeatSoon);
      for (const off of unsubscribe.splice(0)) off();
      const all = () => Promise.all([...byLease.values()].map((a) => a.done));
      const graceOver = new AbortController();
      await Promise.race([all(), sleep(graceMs, graceOver.signal)]);
      graceOver.abort();
      const left = [...byLease.values()];
      for (const attempt of left) attempt.controller.abort(new RunnerShutdown("the runner is shutting down"));
      await Promise.all(left.map((a) => a.done));
      for (const attempt of left) {
        const key = { tenantId: attempt.task.tenant_id, taskId: attempt.task.task_id };
        await writer.change(key, handBack(), { leaseId: attempt.task.lease_id! }).catch((err) => {
          logger.warn({ err, taskId: key.taskId }, "could not hand a task back; its lease will expire instead");
        });
      }
      await Promise.all(loops.splice(0));
    },
  };
}

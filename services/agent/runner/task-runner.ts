// The task runner (DESIGN.md rule 4): claims QUEUED tasks with leases, runs
// their agents, heartbeats the leases, and sweeps leases that other runners
// let expire. A unary Run executes here directly through `execute`. One attempt,
// from the agent's start to the write of its end, is in attempt.ts.
import type { Logger } from "../../shared/log.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import type { AgentRegistry } from "../agents/registry.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import { inRunSpan } from "../observe/task-observer.js";
import type { TaskWriter } from "../store/task-writer.js";
import { handBack, requeueLost, retryBackoff } from "../tasks/transitions.js";
import { type AttemptDeps, RunnerShutdown, runAttempt, TaskCanceled } from "./attempt.js";
import { type ClaimWakeups, createClaimWakeups } from "./claim-wakeups.js";
import { createOutcomeJournal, type OutcomeJournal } from "./outcome-journal.js";
import { isStoreUnavailable } from "./store-outage.js";

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

interface Attempt {
  task: TaskRow;
  controller: AbortController;
  done: Promise<TaskRow>;
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
  const { writer, bus, logger, options } = deps;
  const byLease = new Map<string, Attempt>();
  const byTask = new Map<string, Attempt>();
  // Leases whose agent is still at work. An attempt whose agent has ended gives its slot up while
  // its ending is written, so the next claim's round trip overlaps that write instead of following
  // it; at most `concurrency` such endings are in flight before they take slots again.
  const agentsAtWork = new Set<string>();
  const usedSlots = () => agentsAtWork.size + Math.max(0, byLease.size - agentsAtWork.size - options.concurrency);
  let started = false;
  const stopped = new AbortController();
  const wakeups = createClaimWakeups();
  let heartbeatSoon: NodeJS.Timeout | undefined;
  const loops: Promise<void>[] = [];
  const unsubscribe: (() => void)[] = [];
  // Outcomes recorded lately, written again after a failover that lost their commit (outcome-journal.ts).
  const journal = createOutcomeJournal();
  const attemptDeps: AttemptDeps = { ...deps, deltaWindowMs: options.deltaWindowMs, stopping: stopped.signal, journal };
  // One heartbeat at a time per process: a beat asked for while one runs is folded into a follow-up.
  const heartbeat = oneAtATime(async () => {
    if (byLease.size === 0) return;
    const leases = [...byLease.keys()];
    const held = await writer.extendLeases(options.owner, leases, options.leaseMs);
    for (const leaseId of leases) {
      if (held.has(leaseId)) continue;
      // Cancelled (or swept) elsewhere: stop the agent; its result will be discarded.
      byLease.get(leaseId)?.controller.abort(new TaskCanceled("the task was cancelled or lost its lease"));
    }
  });

  function execute(task: TaskRow): Promise<TaskRow> {
    const controller = new AbortController();
    const attempt: Attempt = { task, controller, done: Promise.resolve(task) };
    const started = Date.now();
    const leaseId = task.lease_id!;
    agentsAtWork.add(leaseId);
    const slotFreed = () => {
      if (agentsAtWork.delete(leaseId)) wakeups.slotFreed();
    };
    attempt.done = inRunSpan(task, () => runAttempt(attemptDeps, task, controller, slotFreed))
      .then((row) => {
        logEnd(logger, task, row, controller.signal, started);
        return row;
      })
      .catch((error) => {
        logger.error({ err: error, taskId: task.task_id }, "attempt crashed");
        return task;
      })
      .finally(() => {
        byLease.delete(leaseId);
        agentsAtWork.delete(leaseId);
        if (byTask.get(task.task_id) === attempt) byTask.delete(task.task_id);
        wakeups.slotFreed();
      });
    byLease.set(leaseId, attempt);
    byTask.set(task.task_id, attempt);
    return attempt.done;
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
        unsubscribe.push(bus.subscribe("queue", () => wakeups.wake()));
        loops.push(claimLoop({ ...deps, stopped: stopped.signal, running: usedSlots, execute, wakeups }));
      }
      loops.push(...heartbeatAndSweep({ ...deps, heartbeat, journal, stopped: stopped.signal, unsubscribe }));
    },
    execute,
    abortLocal(taskId) {
      byTask.get(taskId)?.controller.abort(new TaskCanceled("the task was cancelled"));
    },
    active: () => byLease.size,
    async stop(graceMs) {
      stopped.abort();
      wakeups.wake();
      clearTimeout(heartbeatSoon);
      for (const off of unsubscribe.splice(0)) off();
      await drain(() => [...byLease.values()], graceMs, writer, logger);
      await Promise.all(loops.splice(0));
    },
  };
}

function logEnd(logger: Logger, task: TaskRow, row: TaskRow, signal: AbortSignal, startedAt: number): void {
  const reason: unknown = signal.reason;
  // A plain success is the hot path: a synchronous info line each cost 4 % of end-to-end samples.
  logger[row.state === "SUCCEEDED" && !signal.aborted ? "debug" : "info"](
    {
      taskId: task.task_id,
      tenant: task.tenant_id,
      attempt: task.attempt,
      state: row.state,
      ms: Date.now() - startedAt,
      ...(signal.aborted ? { stoppedBy: reason instanceof Error ? reason.message : String(reason) } : {}),
    },
    "attempt ended",
  );
}

/** Claims queued tasks into free slots and runs each through `execute`, until `stopped` fires. */
async function claimLoop(deps: {
  writer: TaskWriter;
  logger: Logger;
  options: RunnerOptions;
  stopped: AbortSignal;
  /** The slots in use (`usedSlots`). */
  running: () => number;
  execute: (task: TaskRow) => Promise<TaskRow>;
  wakeups: ClaimWakeups;
}): Promise<void> {
  const { writer, logger, options, stopped, execute, wakeups } = deps;
  const terms = { owner: options.owner, leaseMs: options.leaseMs };
  while (!stopped.aborted) {
    const free = options.concurrency - deps.running();
    let claimed = 0;
    if (free > 0) {
      try {
        const tasks = await writer.claim(Math.min(free, 32), terms);
        claimed = tasks.length;
        for (const task of tasks) void execute(task);
      } catch (error) {
        logger.warn({ err: error }, "claiming tasks failed; will retry");
      }
    }
    if (stopped.aborted) break;
    if (claimed > 0 && claimed === Math.min(free, 32)) continue;
    // Wait for new work, a slot if none was free, or the poll interval (jittered: replicas spread out).
    await wakeups.wait(options.pollMs * (0.8 + 0.2 * Math.random()), { forSlot: free <= 0 });
  }
}

/** Lets the attempts running finish within `graceMs`, then stops the rest and hands their tasks back to the queue. */
async function drain(running: () => Attempt[], graceMs: number, writer: TaskWriter, logger: Logger): Promise<void> {
  const graceOver = new AbortController();
  await Promise.race([Promise.all(running().map((a) => a.done)), sleep(graceMs, graceOver.signal)]);
  graceOver.abort();
  const left = running();
  for (const attempt of left) attempt.controller.abort(new RunnerShutdown("the runner is shutting down"));
  await Promise.all(left.map((a) => a.done));
  for (const attempt of left) {
    const key = { tenantId: attempt.task.tenant_id, taskId: attempt.task.task_id };
    await writer.change(key, handBack(), { leaseId: attempt.task.lease_id! }).catch((err) => {
      logger.warn({ err, taskId: key.taskId }, "could not hand a task back; its lease will expire instead");
    });
  }
}

/** The heartbeat and the lease sweep, each in its own loop until `stopped` fires. */
function heartbeatAndSweep(deps: {
  writer: TaskWriter;
  logger: Logger;
  options: RunnerOptions;
  heartbeat: () => Promise<void>;
  journal: OutcomeJournal;
  failovers?: (listener: () => void) => () => void;
  stopped: AbortSignal;
  /** Where its subscriptions go, for the runner's stop. */
  unsubscribe: (() => void)[];
}): Promise<void>[] {
  const { writer, logger, options, heartbeat, stopped } = deps;
  const backoff = retryBackoff(options.retryBackoffMs);
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
  if (deps.failovers) deps.unsubscribe.push(deps.failovers(() => (storeWasDown = true)));
  const sweepMs = Math.min(Math.max(Math.floor(options.leaseMs / 3), 100), options.pollMs * 2);
  return [
    every(options.heartbeatMs, () => heartbeat().catch(noteOutage), "heartbeat", logger, stopped),
    every(
      sweepMs,
      async () => {
        if (storeWasDown) {
          await heartbeat().catch(noteOutage);
          await deps.journal.reapply(writer, logger).catch(noteOutage);
          storeWasDown = false;
          sweepAfter = Date.now() + 2 * options.heartbeatMs;
        }
        if (Date.now() < sweepAfter) return;
        const swept = await writer.sweepExpiredLeases(100, requeueLost(backoff)).catch(noteOutage);
        for (const task of swept)
          logger.warn(
            { taskId: task.task_id, tenant: task.tenant_id, state: task.state },
            "requeued a task whose runner was lost",
          );
      },
      "lease sweep",
      logger,
      stopped,
    ),
  ];
}

/** Runs `fn` every `ms` until `stopped` fires; a failure is logged and the next round tries again. */
async function every(
  ms: number,
  fn: () => Promise<void>,
  what: string,
  logger: Logger,
  stopped: AbortSignal,
): Promise<void> {
  while (!stopped.aborted) {
    try {
      await fn();
    } catch (error) {
      logger.warn({ err: error }, `${what} failed; will retry`);
    }
    await sleep(ms, stopped);
  }
}

/** `fn` run one call at a time: calls while it runs share the run and ask for one more after it. */
function oneAtATime(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await fn();
        } while (again);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
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

// Run (DESIGN.md, pattern 1): create the task already claimed by this replica,
// execute it here, and return it once it has ended or needs input. If the caller
// goes away, the task is cancelled — unless it carried a request_id: then it
// keeps running, and a retried Run with that key attaches to it.
import { Code, ConnectError } from "@connectrpc/connect";
import { resourceExhausted } from "../../shared/errors.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import { cancelTask } from "./cancel-task.js";
import { createTask } from "./create-task.js";
import type { TaskDeps } from "./deps.js";
import type { NewTask } from "./new-task.js";
import { claim } from "./transitions.js";
import { isSettled, waitForTask } from "./wait-for-task.js";

const FOREVER_MS = 365 * 24 * 3600 * 1000;

function callerGone(signal: AbortSignal): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) return reason;
  return new ConnectError("the call was cancelled", Code.Canceled);
}

export async function runTask(
  deps: TaskDeps,
  tenantId: string,
  request: NewTask,
  signal: AbortSignal,
  onCreated?: (task: TaskRow) => void,
): Promise<TaskRow> {
  const slot = deps.runs.acquire();
  if (!slot) {
    throw resourceExhausted(
      "TOO_MANY_RUNS",
      `this replica is running ${deps.runs.active} Run calls, its limit; retry later or use CreateTask`,
      1000,
    );
  }
  try {
    const { task, created } = await createTask(deps, tenantId, request, {
      kind: "run",
      afterInsert: claim(deps.executor.owner, deps.limits.leaseMs),
    });
    onCreated?.(task);
    const key: TaskKey = { tenantId, taskId: task.task_id };
    let current: TaskRow | undefined = task;
    if (created) {
      const aborted = new Promise<undefined>((resolve) => {
        if (signal.aborted) resolve(undefined);
        signal.addEventListener("abort", () => resolve(undefined), { once: true });
      });
      current = await Promise.race([deps.executor.execute(task), aborted]);
    }
    // Attached to an existing task, or the local attempt ended without settling
    // (lost lease, shutdown): wait for whoever runs it now.
    if (!signal.aborted && (!current || !isSettled(current))) {
      current = await waitForTask(deps, key, { timeoutMs: FOREVER_MS, signal });
    }
    if (signal.aborted) {
      if (!request.requestId) {
        await cancelTask(deps, key).catch((err) =>
          deps.logger.warn({ err, taskId: key.taskId }, "could not cancel an abandoned Run"),
        );
      }
      throw callerGone(signal);
    }
    if (!current) throw new ConnectError(`task "${key.taskId}" was deleted while running`, Code.Aborted);
    return current;
  } finally {
    slot.release();
  }
}

// Waiting on a task without a sleep loop: a wake-up hint for the task ends the
// wait at once; the bounded poll only covers a lost hint (DESIGN.md rule 3).
import { isTerminal, type TaskKey, type TaskRow } from "../model/task.js";
import { findTask } from "../store/find-task.js";
import type { TaskDeps } from "./deps.js";

/** The states a waiter stops at: the task ended or needs someone's input. */
export function isSettled(task: TaskRow): boolean {
  return isTerminal(task.state) || task.state === "INPUT_REQUIRED";
}

/** Returns the task once `until(task)` holds, or as it is when `timeoutMs` passes or
 * `signal` fires; undefined if the task does not exist (or was deleted). */
export async function waitForTask(
  deps: Pick<TaskDeps, "sql" | "bus" | "limits">,
  key: TaskKey,
  opts: { timeoutMs: number; signal?: AbortSignal; until?: (task: TaskRow) => boolean },
): Promise<TaskRow | undefined> {
  const until = opts.until ?? isSettled;
  const deadline = Date.now() + opts.timeoutMs;
  let hinted: (() => void) | undefined;
  let pendingHint = false;
  const off = deps.bus.subscribe("task", (id) => {
    if (id !== key.taskId) return;
    pendingHint = true;
    hinted?.();
  });
  try {
    for (;;) {
      pendingHint = false;
      const task = await findTask(deps.sql, key);
      if (!task || until(task)) return task;
      const left = deadline - Date.now();
      if (left <= 0 || opts.signal?.aborted) return task;
      if (pendingHint) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, deps.limits.pollMs));
        opts.signal?.addEventListener("abort", done, { once: true });
        hinted = done;
        function done() {
          clearTimeout(timer);
          opts.signal?.removeEventListener("abort", done);
          hinted = undefined;
          resolve();
        }
      });
    }
  } finally {
    off();
  }
}

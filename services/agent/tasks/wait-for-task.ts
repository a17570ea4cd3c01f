// Waiting on a task without a sleep loop: a wake-up hint for the task ends the wait at once,
// and the process's shared poll covers a lost hint (DESIGN.md rule 3; task-waiters.ts).
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
  deps: Pick<TaskDeps, "sql" | "waiters">,
  key: TaskKey,
  opts: { timeoutMs: number; signal?: AbortSignal; until?: (task: TaskRow) => boolean },
): Promise<TaskRow | undefined> {
  const until = opts.until ?? isSettled;
  const deadline = Date.now() + opts.timeoutMs;
  // Followed before the first read, so that a change committed during a read is not missed.
  const wait = deps.waiters.follow(key);
  try {
    for (;;) {
      const task = await findTask(deps.sql, key);
      if (!task || until(task)) return task;
      const left = deadline - Date.now();
      if (left <= 0 || opts.signal?.aborted) return task;
      await wait.next(Number(task.last_sequence), left, opts.signal);
      // The caller has gone: nothing will read the answer.
      if (opts.signal?.aborted) return task;
    }
  } finally {
    wait.stop();
  }
}

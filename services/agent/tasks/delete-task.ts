import { Code } from "@connectrpc/connect";
import { notFound, rpcError } from "../../shared/errors.js";
import { isTerminal, type TaskKey } from "../model/task.js";
import type { TaskDeps } from "./deps.js";

/** Deletes a task that has ended, with its event log. */
export async function deleteTask(deps: Pick<TaskDeps, "writer">, key: TaskKey): Promise<void> {
  const deleted = await deps.writer.remove(key, (task) => {
    if (!isTerminal(task.state)) {
      throw rpcError(
        Code.FailedPrecondition,
        "TASK_NOT_TERMINAL",
        `task "${key.taskId}" is ${task.state}; only a task that has ended can be deleted (cancel it first)`,
      );
    }
  });
  if (!deleted) throw notFound("task", key.taskId);
}

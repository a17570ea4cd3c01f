import { notFound } from "../../shared/errors.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import type { TaskDeps } from "./deps.js";
import { cancel } from "./transitions.js";

/** Idempotent: a task that has ended is returned as it is. The runner holding
 * the task hears the wake-up and aborts the agent. */
export async function cancelTask(deps: Pick<TaskDeps, "writer" | "executor">, key: TaskKey): Promise<TaskRow> {
  const result = await deps.writer.change(key, cancel());
  if (result.status === "missing") throw notFound("task", key.taskId);
  // Runs here: stop the agent now. Elsewhere: its runner hears the wake-up or its next heartbeat.
  if (result.status === "changed") deps.executor.abortLocal(key.taskId);
  return result.task;
}

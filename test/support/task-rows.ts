// Task rows for tests that write through the task writer directly, below the RPCs.
import type { TaskRow } from "../../services/agent/model/task.js";
import { newTaskRow } from "../../services/agent/tasks/new-task.js";

/** A new QUEUED task row of `simulate`, as CreateTask builds one (newTaskRow). */
export function queuedTaskRow(tenant: string, webhook: TaskRow["webhook"] = null): TaskRow {
  const request = {
    agent: "simulate",
    input: {},
    requestId: null,
    labels: {},
    timeoutMs: 60_000,
    maxAttempts: 3,
    webhook,
  };
  return newTaskRow(tenant, "1.0.0", request, "", new Date());
}

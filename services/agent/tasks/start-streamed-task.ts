// The start of RunStream and Converse `start`: create the task (idempotent per
// request_id, like Run) and, while this replica has room for Run-like work, run it
// here at once, claimed in the same statement that creates it — no queue wait
// before the first token. Past that room the task is left QUEUED for any runner.
// Either way the stream only watches: the task runs to its end whether or not
// anyone still listens (a dropped stream never cancels it).
import type { TaskRow } from "../model/task.js";
import { createTask } from "./create-task.js";
import type { TaskDeps } from "./deps.js";
import type { NewTask } from "./new-task.js";
import { claim } from "./transitions.js";

export async function startStreamedTask(
  deps: TaskDeps,
  tenantId: string,
  request: NewTask,
): Promise<{ task: TaskRow; created: boolean }> {
  const slot = deps.runs.acquire();
  let executing = false;
  try {
    const { task, created } = await createTask(deps, tenantId, request, {
      kind: "run",
      ...(slot ? { afterInsert: claim(deps.executor.owner, deps.limits.leaseMs) } : {}),
    });
    if (slot && created && task.state === "RUNNING" && task.lease_owner === deps.executor.owner) {
      executing = true;
      // execute() never rejects: an attempt's failure ends up in the task. The slot is held until it ends.
      void deps.executor.execute(task).finally(slot.release);
    }
    return { task, created };
  } finally {
    if (!executing) slot?.release();
  }
}

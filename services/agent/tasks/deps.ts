import type { Sql } from "../../shared/db/database.js";
import type { Logger } from "../../shared/log.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import type { AgentRegistry } from "../agents/registry.js";
import type { TaskRow } from "../model/task.js";
import type { TaskWriter } from "../store/task-writer.js";
import type { TaskWebhookCheck } from "../webhooks/check-task-webhook.js";
import type { RunSlots } from "./run-slots.js";
import type { TaskWaiters } from "./task-waiters.js";

/** What the task use cases need, passed in (never reached for through globals). */
export interface TaskDeps {
  sql: Sql;
  writer: TaskWriter;
  bus: WakeupBus;
  registry: AgentRegistry;
  /** Runs attempts in this process (the task runner). */
  executor: LocalExecutor;
  logger: Logger;
  limits: { leaseMs: number };
  /** Waits on tasks (WaitTask, a Run attached to a task running elsewhere). */
  waiters: TaskWaiters;
  /** Room for Run calls and streamed starts executing in this process. */
  runs: RunSlots;
  /** Checks a per-task webhook before the task is created (SSRF guard, signing secret). */
  checkWebhook?: TaskWebhookCheck;
}

/** What the use cases need of this process's runner (runner/task-runner.ts satisfies it). */
export interface LocalExecutor {
  /** Whose leases this process's attempts hold: a task claimed for it runs here. */
  readonly owner: string;
  /** Runs an attempt claimed for `owner`; resolves with the task once the attempt has ended, never rejects. */
  execute(task: TaskRow): Promise<TaskRow>;
  /** Stops the agent of a task running here that was just cancelled in this process. */
  abortLocal(taskId: string): void;
}

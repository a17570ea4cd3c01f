import type { Sql } from "../../shared/db/database.js";
import type { Logger } from "../../shared/log.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import type { AgentRegistry } from "../agents/registry.js";
import type { TaskRunner } from "../runner/task-runner.js";
import type { TaskWriter } from "../store/task-writer.js";
import type { TaskWebhookCheck } from "../webhooks/check-task-webhook.js";

/** What the task use cases need, passed in (never reached for through globals). */
export interface TaskDeps {
  sql: Sql;
  writer: TaskWriter;
  bus: WakeupBus;
  registry: AgentRegistry;
  runner: TaskRunner;
  logger: Logger;
  limits: { pollMs: number; leaseMs: number; maxConcurrentRuns: number };
  /** Unary Run calls executing in this process now. */
  runs: { active: number };
  /** Checks a per-task webhook before the task is created (SSRF guard, signing secret). */
  checkWebhook?: TaskWebhookCheck;
}

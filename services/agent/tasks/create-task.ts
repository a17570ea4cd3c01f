// CreateTask (and the creation step of Run): validate against the agent, insert
// durably, and resolve idempotency keys through the unique index — never a
// read-then-write, so concurrent duplicates still make one task.
import { Code } from "@connectrpc/connect";
import { invalidArgument, notFound, rpcError } from "../../shared/errors.js";
import type { Decide } from "../model/change.js";
import type { TaskRow } from "../model/task.js";
import { findTaskByRequestId } from "../store/find-task.js";
import type { TaskDeps } from "./deps.js";
import { type NewTask, newTaskRow, requestFingerprint } from "./new-task.js";

export async function createTask(
  deps: Pick<TaskDeps, "sql" | "writer" | "registry" | "checkWebhook">,
  tenantId: string,
  request: NewTask,
  opts: { kind: "run" | "task"; afterInsert?: Decide },
): Promise<{ task: TaskRow; created: boolean }> {
  // `agent` is `name` (its highest version here) or `name@version`; the task records both parts.
  const agent = deps.registry.get(request.agent);
  if (!agent) throw notFound("agent", request.agent);
  if (agent.unavailableReason !== undefined) {
    throw rpcError(
      Code.FailedPrecondition,
      "AGENT_UNAVAILABLE",
      `agent "${agent.name}" is not available: ${agent.unavailableReason}`,
      {
        metadata: { agent: agent.name },
      },
    );
  }
  const violations = deps.registry.validateInput(`${agent.name}@${agent.version}`, request.input);
  if (violations.length > 0) throw invalidArgument(violations, "INPUT_SCHEMA_VIOLATION");
  if (request.webhook && request.webhookUrl && deps.checkWebhook)
    await deps.checkWebhook(tenantId, String(request.webhook.url), request.webhookUrl);

  // Only a request_id needs one (to tell a retry from a reuse); hashing the input costs on every call.
  const fingerprint = request.requestId ? requestFingerprint(opts.kind, request) : "";
  // A conflicting row can be deleted between our insert and our read; then try again.
  for (let i = 0; i < 3; i++) {
    const row = newTaskRow(tenantId, agent.version, { ...request, agent: agent.name }, fingerprint, new Date());
    const inserted = await deps.writer.insert(row, opts.afterInsert);
    if (inserted) return { task: inserted.task, created: true };
    const existing = await findTaskByRequestId(deps.sql, tenantId, request.requestId!);
    if (!existing) continue;
    if (existing.request_fingerprint !== fingerprint) {
      throw rpcError(
        Code.AlreadyExists,
        "REQUEST_ID_REUSED",
        `request_id "${request.requestId}" was already used for a different request (task ${existing.task_id})`,
        { metadata: { task_id: existing.task_id } },
      );
    }
    return { task: existing, created: false };
  }
  throw rpcError(Code.Aborted, "CONCURRENT_CHANGE", "the task for this request_id changed concurrently; retry");
}

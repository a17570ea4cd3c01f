// What an access token limited to tasks or agents may reach (auth-service.ts mints them).
// A task-limited token sees only its tasks: any other task id is NOT_FOUND (as a task
// of another tenant is), ListTasks lists only them, and it creates no task and manages
// no webhooks. An agent-limited token runs and creates tasks of its agents only.
// Checked here, after authentication, from each request message; a stream's messages
// (WatchTask, Converse) are checked as they arrive.
import { Code, type Interceptor } from "@connectrpc/connect";
import type { Principal } from "../../shared/auth/authenticator.js";
import { notFound, rpcError } from "../../shared/errors.js";
import { principalKey } from "../model/request-context.js";

/** RPCs whose request names one task in `task_id`. */
const TASK_ID_RPCS = new Set(
  ["GetTask", "WaitTask", "CancelTask", "DeleteTask", "ProvideInput", "WatchTask", "ListTaskEvents"].map(
    (m) => `agentd.v1.TaskService/${m}`,
  ),
);
/** RPCs that create a task of the agent in `agent`. */
const CREATE_RPCS = new Set([
  "agentd.v1.AgentService/Run",
  "agentd.v1.AgentService/RunStream",
  "agentd.v1.TaskService/CreateTask",
]);

type Limits = NonNullable<Principal["token"]>;

/** Throws when a token with `limits` may not make this request. */
function checkTokenLimits(limits: Limits, rpc: string, message: Record<string, unknown>): void {
  if (TASK_ID_RPCS.has(rpc)) checkTask(limits, String(message.taskId ?? ""));
  else if (CREATE_RPCS.has(rpc)) checkCreate(limits, String(message.agent ?? ""));
  else if (rpc === "agentd.v1.AgentService/Converse") {
    const msg = message.msg as { case?: string; value?: Record<string, unknown> } | undefined;
    if (msg?.case === "start") checkCreate(limits, String(msg.value?.agent ?? ""));
    if (msg?.case === "attach") checkTask(limits, String(msg.value?.taskId ?? ""));
  } else if (rpc.startsWith("agentd.v1.WebhookService/") && limits.taskIds) {
    throw rpcError(
      Code.PermissionDenied,
      "TOKEN_LIMITED_TO_TASKS",
      "an access token limited to tasks cannot manage webhooks",
    );
  }
}

function checkTask(limits: Limits, taskId: string): void {
  if (!limits.taskIds || taskId === "") return; // an empty id is the handler's INVALID_ARGUMENT
  if (!limits.taskIds.includes(taskId.toLowerCase())) throw notFound("task", taskId);
}

function checkCreate(limits: Limits, agent: string): void {
  if (limits.taskIds) {
    throw rpcError(
      Code.PermissionDenied,
      "TOKEN_LIMITED_TO_TASKS",
      "an access token limited to tasks cannot create tasks",
    );
  }
  if (limits.agents && !limits.agents.includes(agent)) {
    throw rpcError(
      Code.PermissionDenied,
      "TOKEN_LIMITED_TO_AGENTS",
      `this access token may run only ${limits.agents.join(", ")}`,
      {
        metadata: { agents: limits.agents.join(",") },
      },
    );
  }
}

/** Runs after `authInterceptor` (which puts the principal in the context). */
export function tokenLimitsInterceptor(): Interceptor {
  return (next) => (req) => {
    const limits = req.contextValues.get(principalKey)?.token;
    // Most calls carry an API key, not a limited token: no await of their own here.
    if (!limits || (!limits.taskIds && !limits.agents)) return next(req);
    return limitedCall(next, req, limits);
  };
}

async function limitedCall(
  next: Parameters<Interceptor>[0],
  req: Parameters<ReturnType<Interceptor>>[0],
  limits: Limits,
): ReturnType<ReturnType<Interceptor>> {
  const rpc = `${req.service.typeName}/${req.method.name}`;
  if (!req.stream) {
    checkTokenLimits(limits, rpc, req.message as unknown as Record<string, unknown>);
    const res = await next(req);
    if (rpc === "agentd.v1.TaskService/ListTasks" && limits.taskIds && !res.stream) {
      // Only its tasks are listed (a page may then hold fewer than page_size; the page token goes on).
      const message = res.message as unknown as { tasks: { id: string }[] };
      message.tasks = message.tasks.filter((t) => limits.taskIds!.includes(t.id));
    }
    return res;
  }
  const messages = req.message;
  return next({
    ...req,
    message: (async function* () {
      for await (const message of messages) {
        checkTokenLimits(limits, rpc, message as unknown as Record<string, unknown>);
        yield message;
      }
    })(),
  });
}

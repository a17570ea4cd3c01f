// AgentService at the edge: agent cards, the synchronous Run, and the streams RunStream and Converse.
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { AgentService, type ConverseRequest, ConverseRequestSchema } from "../../../gen/agentd/v1/agent_service_pb.js";
import type { Principal } from "../../shared/auth/authenticator.js";
import { invalidArgument, notFound, rpcError } from "../../shared/errors.js";
import type { AgentDefinition } from "../agents/agent.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import { findTask } from "../store/find-task.js";
import { type ClientMessage, conversation } from "../streams/conversation.js";
import { connectionKey } from "../streams/stream-limits.js";
import type { StreamingDeps } from "../streams/streaming.js";
import type { TaskDeps } from "../tasks/deps.js";
import type { NewTask } from "../tasks/new-task.js";
import { runTask } from "../tasks/run-task.js";
import { startStreamedTask } from "../tasks/start-streamed-task.js";
import { toTask } from "../wire/convert.js";
import { schemaObject } from "../wire/schema-object.js";
import { principalOf } from "./interceptors.js";
import { createPageTokens, cursors, databasePageTokenKey } from "./page-token.js";
import { checkMessage } from "./request-check.js";
import { parseAfterSequence, parseIdField, parseInputAnswer, parseNewTask, parsePageSize } from "./request-fields.js";
import { converseResponse, watchResponse } from "./stream-responses.js";
import type { HandlerLimits } from "./task-service.js";

function agentCard(agent: AgentDefinition) {
  return {
    name: agent.name,
    version: agent.version,
    description: agent.description,
    inputSchema: schemaObject(agent.inputSchema),
    outputSchema: schemaObject(agent.outputSchema),
    capabilities: agent.capabilities ?? [],
    available: agent.unavailableReason === undefined,
    unavailableReason: agent.unavailableReason ?? "",
  };
}

export function agentServiceRoutes(deps: TaskDeps, limits: HandlerLimits, streams: StreamingDeps) {
  const pageTokens = createPageTokens(databasePageTokenKey(deps.sql));
  return (router: ConnectRouter) =>
    router.service(AgentService, {
      async listAgents(req) {
        const pageSize = parsePageSize(req.pageSize, { default: 50, max: 1000 });
        const after = await pageTokens.decode(req.pageToken, "agents", cursors.name);
        // Several versions of one agent are listed one after another, newest first; the page
        // token names the last one given (`name@version`).
        const all = deps.registry.list();
        const refOf = (a: AgentDefinition) => `${a.name}@${a.version}`;
        const resumeAt = after === null ? 0 : all.findIndex((a) => refOf(a) === after) + 1;
        const rest =
          after !== null && resumeAt === 0 ? all.filter((a) => a.name > after.split("@")[0]!) : all.slice(resumeAt);
        const page = rest.slice(0, pageSize);
        const last = page.at(-1);
        return {
          agents: page.map(agentCard),
          nextPageToken: rest.length > pageSize && last ? await pageTokens.encode(refOf(last), "agents") : "",
        };
      },

      getAgent(req) {
        if (req.name === "") throw invalidArgument([{ field: "name", description: "is required" }]);
        const agent = deps.registry.get(req.name);
        if (!agent) throw notFound("agent", req.name);
        return { agent: agentCard(agent) };
      },

      async run(req, ctx) {
        const { tenantId } = principalOf(ctx);
        const request = parseNewTask(req, limits);
        const task = await runTask(deps, tenantId, request, ctx.signal);
        return { task: toTask(task) };
      },

      async *runStream(req, ctx) {
        const { tenantId } = principalOf(ctx);
        const request = parseNewTask(req, limits);
        const slot = streams.limits.admit("run_stream", tenantId, ctx.values.get(connectionKey));
        try {
          const { task } = await startStreamedTask(deps, tenantId, request);
          // From the first event: its state_change snapshot carries the task id, for re-attaching.
          for await (const item of streams.hub.watch(task, 0, ctx.signal)) yield watchResponse(task.task_id, item);
        } finally {
          slot.release();
        }
      },

      async *converse(reqs, ctx) {
        const principal = principalOf(ctx);
        const messages = reqs[Symbol.asyncIterator]();
        const first = await messages.next();
        if (first.done) return; // half-closed before saying anything: nothing to do
        checkConverseRequest(first.value, limits);
        const opening = parseOpening(first.value, principal, limits);
        const slot = streams.limits.admit("converse", principal.tenantId, ctx.values.get(connectionKey));
        try {
          let task: TaskRow;
          if (opening.kind === "start")
            task = (await startStreamedTask(deps, principal.tenantId, opening.request)).task;
          else {
            const found = await findTask(deps.sql, opening.key);
            if (!found) throw notFound("task", opening.key.taskId);
            task = found;
          }
          const later = clientMessages(messages, limits);
          for await (const item of conversation(
            { tasks: deps, hub: streams.hub },
            task,
            opening.after,
            later,
            ctx.signal,
          )) {
            yield converseResponse(task.task_id, item);
          }
        } finally {
          slot.release();
        }
      },
    });
}

/** The input interceptor's check, per message: a bidi stream's messages do not pass through it. */
function checkConverseRequest(message: ConverseRequest, limits: HandlerLimits): void {
  const violations = checkMessage(ConverseRequestSchema, message, limits);
  if (violations.length > 0) throw invalidArgument(violations);
}

type Opening = { kind: "start"; request: NewTask; after: 0 } | { kind: "attach"; key: TaskKey; after: number };

/** The first message of a conversation: start or attach. Anything else ends the call — without
 * a task there is nothing to go on with. */
function parseOpening(first: ConverseRequest, principal: Principal, limits: HandlerLimits): Opening {
  const msg = first.msg;
  switch (msg.case) {
    case "start":
      return { kind: "start", request: parseNewTask(msg.value, limits), after: 0 };
    case "attach":
      // Attaching lets the caller answer and cancel someone else's task: that is a write.
      if (!principal.scopes.has("tasks:write")) {
        throw rpcError(
          Code.PermissionDenied,
          "MISSING_SCOPE",
          "attaching to a task needs an API key with scope tasks:write",
          {
            metadata: { required: "tasks:write" },
          },
        );
      }
      return {
        kind: "attach",
        key: { tenantId: principal.tenantId, taskId: parseIdField(msg.value.taskId, "attach.task_id", "task") },
        after: parseAfterSequence(msg.value.afterSequence, "attach.after_sequence"),
      };
    case undefined:
      throw invalidArgument(
        [{ field: "msg", description: "is empty; the first message must be start or attach" }],
        "EMPTY_MESSAGE",
      );
    default:
      throw rpcError(
        Code.FailedPrecondition,
        "CONVERSATION_NOT_STARTED",
        `the first message must be start or attach, not ${msg.case}: there is no task to ${msg.case === "input" ? "answer" : "cancel"} yet`,
      );
  }
}

/** The messages after the first, parsed; anything that cannot be applied becomes a refusal. */
async function* clientMessages(
  messages: AsyncIterator<ConverseRequest>,
  limits: HandlerLimits,
): AsyncGenerator<ClientMessage, void> {
  for (let next = await messages.next(); !next.done; next = await messages.next()) {
    const msg = next.value.msg;
    try {
      checkConverseRequest(next.value, limits);
      switch (msg.case) {
        case "input": {
          yield { kind: "input", ...parseInputAnswer(msg.value, "input.value", limits.maxInputDepth) };
          break;
        }
        case "cancel":
          yield { kind: "cancel" };
          break;
        case "start":
        case "attach":
          throw rpcError(
            Code.FailedPrecondition,
            "CONVERSATION_ALREADY_STARTED",
            `${msg.case} is only allowed as the first message; this conversation already has its task`,
          );
        default:
          throw invalidArgument([{ field: "msg", description: "is empty; send input or cancel" }], "EMPTY_MESSAGE");
      }
    } catch (error) {
      if (!(error instanceof ConnectError)) throw error;
      yield { kind: "refused", error };
    }
  }
}

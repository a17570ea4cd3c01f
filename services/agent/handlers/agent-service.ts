// AgentService at the edge: agent cards and the synchronous Run.
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, type ConnectRouter, ConnectError } from "@connectrpc/connect";
import { AgentService } from "../../../gen/agentd/v1/agent_service_pb.js";
import { invalidArgument, notFound } from "../../shared/errors.js";
import type { AgentDefinition } from "../agents/agent.js";
import type { TaskDeps } from "../tasks/deps.js";
import { runTask } from "../tasks/run-task.js";
import { toTask } from "./convert.js";
import { principalOf } from "./interceptors.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import { parseNewTask, parsePageSize } from "./request-fields.js";
import type { HandlerLimits } from "./task-service.js";

/** A JSON Schema as a Struct: the boolean schemas `true`/`false` become their object forms. */
function schemaStruct(schema: unknown): JsonObject {
  if (schema === true) return {};
  if (schema === false) return { not: {} };
  return schema as JsonObject;
}

export function agentCard(agent: AgentDefinition) {
  return {
    name: agent.name,
    version: agent.version,
    description: agent.description,
    inputSchema: schemaStruct(agent.inputSchema),
    outputSchema: schemaStruct(agent.outputSchema),
    capabilities: agent.capabilities ?? [],
    available: true,
    unavailableReason: "",
  };
}

export function agentServiceRoutes(deps: TaskDeps, limits: HandlerLimits) {
  return (router: ConnectRouter) =>
    router.service(AgentService, {
      listAgents(req) {
        const pageSize = parsePageSize(req.pageSize, { default: 50, max: 1000 });
        const after = decodePageToken(req.pageToken, "agents");
        const all = deps.registry.list();
        const rest = after === null ? all : all.filter((a) => a.name > after);
        const page = rest.slice(0, pageSize);
        const last = page.at(-1);
        return {
          agents: page.map(agentCard),
          nextPageToken: rest.length > pageSize && last ? encodePageToken(last.name, "agents") : "",
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

      // biome-ignore lint/correctness/useYield: answers UNIMPLEMENTED until streaming lands.
      async *runStream() {
        throw new ConnectError("RunStream is not implemented yet (streaming lands in its own issue)", Code.Unimplemented);
      },

      // biome-ignore lint/correctness/useYield: answers UNIMPLEMENTED until streaming lands.
      async *converse() {
        throw new ConnectError("Converse is not implemented yet (streaming lands in its own issue)", Code.Unimplemented);
      },
    });
}

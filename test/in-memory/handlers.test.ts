// The in-memory tier: the service's Connect handlers called through createRouterTransport, with no
// server, no port and no HTTP. Fast and direct for handler behaviour (request validation, what a
// call returns); protocol behaviour (HTTP versions, codecs, headers, authentication from headers)
// is tested against the real server elsewhere. The caller is set as the auth interceptor would.
import { Code, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/agentd/v1/agent_service_pb.js";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { TaskService } from "../../gen/agentd/v1/task_service_pb.js";
import { builtinAgents } from "../../services/agent/agents/builtin.js";
import { createAgentRegistry } from "../../services/agent/agents/registry.js";
import { principalKey } from "../../services/agent/model/request-context.js";
import { createAgentService } from "../../services/agent/service.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { loadConfig } from "../../services/shared/config.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { silentLogger } from "../../services/shared/log.js";
import { createLocalWakeupBus } from "../../services/shared/wakeup/bus.js";
import { TEST_CONFIG } from "../support/agentd.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { badRequest, errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";

let testDb: TestDatabase;
let db: Database;
let tasks: ReturnType<typeof createClient<typeof TaskService>>;
let agents: ReturnType<typeof createClient<typeof AgentService>>;

/** The caller every in-memory call runs as: tenant t1 with every scope. */
const asTenant =
  (tenantId: string): Interceptor =>
  (next) =>
  (req) => {
    req.contextValues.set(principalKey, { tenantId, keyId: "in-memory", scopes: new Set(SCOPES) });
    return next(req);
  };

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await openDatabase(testDb.url ? { url: testDb.url } : { dataDir: testDb.dataDir! });
  const config = loadConfig({}, {}, { ...TEST_CONFIG });
  let registry: ReturnType<typeof createAgentRegistry> | undefined;
  registry = createAgentRegistry(builtinAgents({ config, agents: () => registry }));
  // Unstarted: no listener, no runner; tasks stay QUEUED.
  const service = createAgentService({ db, bus: createLocalWakeupBus(), registry, config, logger: silentLogger() });
  const transport = createRouterTransport(service.routes, { router: { interceptors: [asTenant("t1")] } });
  tasks = createClient(TaskService, transport);
  agents = createClient(AgentService, transport);
});

afterAll(async () => {
  await db?.close();
  await testDb?.drop();
});

describe("AgentService (in memory)", () => {
  it("ListAgents lists the built-in agents, each with a version", async () => {
    const { agents: list } = await agents.listAgents({});
    expect(list.map((a) => a.name)).toEqual(expect.arrayContaining(["simulate", "summarize"]));
    for (const agent of list) expect(agent.version).not.toBe("");
  });

  it("GetAgent of an unknown agent is NOT_FOUND", async () => {
    await expectCode(agents.getAgent({ name: "nope" }), Code.NotFound);
  });
});

describe("TaskService (in memory)", () => {
  it("CreateTask stores a QUEUED task that GetTask and ListTasks return", async () => {
    const { task } = await tasks.createTask({
      agent: "simulate",
      input: value({ steps: 1 }),
      labels: { tier: "in-memory" },
    });
    expect(task?.state).toBe(TaskState.QUEUED);
    const { task: again } = await tasks.getTask({ taskId: task!.id });
    expect(again?.id).toBe(task!.id);
    const { tasks: listed } = await tasks.listTasks({ labels: { tier: "in-memory" } });
    expect(listed.map((t) => t.id)).toEqual([task!.id]);
  });

  it("CreateTask of an unknown agent is NOT_FOUND with reason AGENT_NOT_FOUND", async () => {
    const err = await expectCode(tasks.createTask({ agent: "nope" }), Code.NotFound);
    expect(errorInfo(err)?.reason).toBe("AGENT_NOT_FOUND");
  });

  it("CreateTask reports every bad field together as INVALID_ARGUMENT", async () => {
    const err = await expectCode(
      tasks.createTask({
        agent: "simulate",
        maxAttempts: 99,
        timeout: { seconds: -1n },
        labels: { "bad key!": "x" },
        requestId: "x".repeat(201),
      }),
      Code.InvalidArgument,
    );
    const fields = badRequest(err)?.fieldViolations.map((v) => v.field) ?? [];
    expect(fields).toEqual(expect.arrayContaining(["max_attempts", "timeout", "labels[bad key!]", "request_id"]));
  });

  it("ListTasks refuses a page token it did not issue, and an unknown state", async () => {
    await expectCode(tasks.listTasks({ pageToken: "not-a-token" }), Code.InvalidArgument);
    await expectCode(tasks.listTasks({ states: [99 as TaskState] }), Code.InvalidArgument);
  });

  it("GetTask of a malformed or unknown id is NOT_FOUND, as another tenant's task is", async () => {
    await expectCode(tasks.getTask({ taskId: "not-an-id" }), Code.NotFound);
    await expectCode(tasks.getTask({ taskId: "01960000-0000-7000-8000-000000000000" }), Code.NotFound);
  });
});

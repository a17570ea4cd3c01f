// The same server, reached by grpc-js (stubs loaded from our .proto files), Connect JSON over
// HTTP/1.1 with plain fetch, Connect over HTTP/2, gRPC and gRPC-Web.
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { type Protocol, repoRoot, startAgentd, type TestAgentd } from "../support/agentd.js";
import { plain, value } from "../support/json.js";

let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd();
});
afterAll(async () => {
  await agentd?.close();
});

describe("one server, every protocol", () => {
  it("grpc-js with stubs from proto/ runs an agent and reads the task back", async () => {
    const definition = protoLoader.loadSync(["agentd/v1/agent_service.proto", "agentd/v1/task_service.proto"], {
      includeDirs: [join(repoRoot, "proto")],
      longs: String,
      enums: String,
      oneofs: true,
    });
    type Unary = (
      req: object,
      md: grpc.Metadata,
      cb: (err: grpc.ServiceError | null, res: { task: { id: string; state: string } }) => void,
    ) => void;
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      agentd: { v1: { AgentService: grpc.ServiceClientConstructor; TaskService: grpc.ServiceClientConstructor } };
    };
    const agents = new pkg.agentd.v1.AgentService(
      `127.0.0.1:${agentd.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as Record<string, Unary> & grpc.Client;
    const tasks = new pkg.agentd.v1.TaskService(
      `127.0.0.1:${agentd.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as Record<string, Unary> & grpc.Client;
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${agentd.key}`);
    const call = (c: Record<string, Unary> & grpc.Client, m: string, req: object) =>
      new Promise<{ task: { id: string; state: string } }>((resolve, reject) =>
        c[m]!.call(c, req, md, (e, r) => (e ? reject(e) : resolve(r))),
      );
    const ran = await call(agents, "Run", {
      agent: "simulate",
      input: { structValue: { fields: { steps: { numberValue: 1 } } } },
    });
    expect(ran.task.state).toBe("TASK_STATE_SUCCEEDED");
    const got = await call(tasks, "GetTask", { taskId: ran.task.id });
    expect(got.task.id).toBe(ran.task.id);
    // Error messages reach grpc-js intact (no stray percent-escapes).
    const err = await call(tasks, "GetTask", { taskId: "" }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toBe("task_id: is required");
    agents.close();
    tasks.close();
  });

  it("plain HTTP/1.1 POST with JSON (the Connect protocol) creates and waits", async () => {
    const post = async (path: string, body: object) => {
      const res = await fetch(`${agentd.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${agentd.key}` },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as { task: { id: string; state: string; output?: { steps_completed: number } } };
    };
    const created = await post("/agentd.v1.TaskService/CreateTask", { agent: "simulate", input: { steps: 2 } });
    expect(created.task.state).toBe("TASK_STATE_QUEUED");
    const waited = await post("/agentd.v1.TaskService/WaitTask", { task_id: created.task.id, timeout: "10s" });
    expect(waited.task.state).toBe("TASK_STATE_SUCCEEDED");
    expect(waited.task.output?.steps_completed).toBe(2);
  });

  it.each<Protocol>(["connect", "connect-http1", "grpc", "grpc-web", "grpc-web-http1"])(
    "%s: Run, then ListTasks finds it",
    async (protocol) => {
      const client = agentd.clients(agentd.key, protocol);
      const { task } = await client.agents.run({
        agent: "simulate",
        input: value({ steps: 1, output: { via: protocol } }),
        labels: { via: protocol },
      });
      expect(task?.state).toBe(TaskState.SUCCEEDED);
      expect(plain<{ output: { via: string } }>(task?.output).output.via).toBe(protocol);
      const { tasks } = await client.tasks.listTasks({ labels: { via: protocol } });
      expect(tasks.map((t) => t.id)).toEqual([task!.id]);
    },
  );
});

// agentd with AGENTD_GRPC_SERVER=grpc-js: gRPC connections are served by grpc-js on the one port
// (counted in agentd_http2_connections_total{server="grpc-js"}), with the same results, errors
// and auth refusals as on connect-node; Connect and gRPC-Web on the same port keep working.
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { converse, grpcAgentClient, isState, toValue } from "../streams/grpc-client.js";
import { type Protocol, startAgentd, type TestAgentd } from "../support/agentd.js";
import { plain, value } from "../support/json.js";

let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd({ config: { grpcServer: "grpc-js", idleTimeoutMs: 500 } });
});
afterAll(async () => {
  await agentd?.close();
});

async function connectionsBy(server: string): Promise<number> {
  const text = await (await fetch(`${agentd.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`agentd_http2_connections_total{server="${server}"}`));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

describe("gRPC served by grpc-js on the one port", () => {
  it("runs unary, server-streaming and bidi calls over gRPC through grpc-js", async () => {
    const before = await connectionsBy("grpc-js");
    const client = agentd.clients(agentd.key, "grpc");
    const { task } = await client.agents.run({ agent: "simulate", input: value({ steps: 2 }) });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    // The log of a finished task is replayed, then the stream ends.
    const sequences: number[] = [];
    for await (const res of client.tasks.watchTask({ taskId: task!.id }, { signal: AbortSignal.timeout(20_000) })) {
      if (res.event) sequences.push(Number(res.event.sequence));
    }
    expect(sequences).toEqual(sequences.map((_, i) => i + 1));
    expect(sequences.length).toBeGreaterThan(2);
    // Bidi, from grpc-js's own client: start a task and follow it to the end.
    const grpcClient = grpcAgentClient(agentd.url);
    try {
      const call = converse(grpcClient, agentd.key);
      call.write({ start: { agent: "simulate", input: toValue({ steps: 1 }) } });
      await call.waitFor(isState("SUCCEEDED"));
      call.end();
      expect((await call.status).code).toBe(grpc.status.OK);
    } finally {
      grpcClient.close();
    }
    expect(await connectionsBy("grpc-js")).toBeGreaterThan(before);
  });

  it("answers errors with the code, message and details of the connect-node path", async () => {
    const client = agentd.clients(agentd.key, "grpc");
    const missing = await client.tasks.getTask({ taskId: "" }).catch((e: unknown) => ConnectError.from(e));
    expect((missing as ConnectError).code).toBe(Code.InvalidArgument);
    expect((missing as ConnectError).rawMessage).toBe("task_id: is required");
    const refused = await agentd
      .clients("agentd_wrong", "grpc")
      .tasks.getTask({ taskId: "x" })
      .catch((e: unknown) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(Code.Unauthenticated);
    expect((refused as ConnectError).findDetails(ErrorInfoSchema).length).toBeGreaterThan(0);
  });

  it("closes a gRPC connection idle for AGENTD_IDLE_TIMEOUT_MS, as on the connect-node path", async () => {
    const session = http2.connect(agentd.url);
    session.on("error", () => {});
    const stream = session.request({
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Check",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.end(Buffer.alloc(5)); // an empty HealthCheckRequest
    stream.resume();
    await new Promise((resolve) => stream.on("close", resolve));
    // Generous bound: the idle timeout is 0.5 s.
    const goaway = await Promise.race([
      new Promise((resolve) => session.once("goaway", () => resolve("goaway"))),
      new Promise((resolve) => setTimeout(() => resolve("still open"), 10_000)),
    ]);
    session.destroy();
    expect(goaway).toBe("goaway");
  });

  it.each<Protocol>(["connect", "connect-http1", "grpc-web", "grpc-web-http1"])(
    "%s still works beside it",
    async (protocol) => {
      const client = agentd.clients(agentd.key, protocol);
      const { task } = await client.agents.run({
        agent: "simulate",
        input: value({ steps: 1, output: { via: protocol } }),
      });
      expect(task?.state).toBe(TaskState.SUCCEEDED);
      expect(plain<{ output: { via: string } }>(task?.output).output.via).toBe(protocol);
    },
  );
});

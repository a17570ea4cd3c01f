// Bad input gets its code and a clear message — never INTERNAL, never a crash.
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { badRequest, errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";

let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd({ config: { maxRequestBytes: 64 * 1024, maxInputDepth: 16 } });
});
afterAll(async () => {
  await agentd?.close();
});

async function postJson(path: string, body: string, key = agentd.key) {
  const res = await fetch(`${agentd.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body,
  });
  return { status: res.status, body: (await res.json()) as { code?: string; message?: string } };
}

describe("malformed bodies", () => {
  it("invalid JSON is INVALID_ARGUMENT", async () => {
    const res = await postJson("/agentd.v1.TaskService/CreateTask", "{not json");
    expect(res.body.code).toBe("invalid_argument");
    expect(res.status).toBe(400);
  });

  it("a field of the wrong type is INVALID_ARGUMENT", async () => {
    const res = await postJson("/agentd.v1.TaskService/CreateTask", JSON.stringify({ agent: 5 }));
    expect(res.body.code).toBe("invalid_argument");
  });

  it("garbage binary protobuf is INVALID_ARGUMENT", async () => {
    const res = await fetch(`${agentd.url}/agentd.v1.TaskService/GetTask`, {
      method: "POST",
      headers: { "content-type": "application/proto", authorization: `Bearer ${agentd.key}` },
      body: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("the server keeps serving after all of the above", async () => {
    const { agents } = await agentd.client.agents.listAgents({});
    expect(agents.map((a) => a.name)).toEqual(expect.arrayContaining(["simulate", "summarize"]));
  });
});

describe("requests that break the rules", () => {
  it("an unknown agent is NOT_FOUND", async () => {
    const err = await expectCode(agentd.client.tasks.createTask({ agent: "nope" }), Code.NotFound);
    expect(err.message).toContain("nope");
    expect(errorInfo(err)?.reason).toBe("AGENT_NOT_FOUND");
    await expectCode(agentd.client.agents.run({ agent: "nope" }), Code.NotFound);
    await expectCode(agentd.client.agents.getAgent({ name: "nope" }), Code.NotFound);
  });

  it("a schema violation is INVALID_ARGUMENT with one field violation per problem", async () => {
    const err = await expectCode(
      agentd.client.tasks.createTask({ agent: "summarize", input: value({ max_words: 1, extra: 1 }) }),
      Code.InvalidArgument,
    );
    const fields = badRequest(err)?.fieldViolations.map((v) => v.field) ?? [];
    expect(fields).toContain("input.text");
    expect(fields).toContain("input.max_words");
    expect(fields.length).toBeGreaterThanOrEqual(2);
    expect(errorInfo(err)?.reason).toBe("INPUT_SCHEMA_VIOLATION");
  });

  it("bad request fields are reported together", async () => {
    const err = await expectCode(
      agentd.client.tasks.createTask({
        agent: "simulate",
        maxAttempts: 99,
        timeout: { seconds: -1n },
        labels: { "bad key!": "x" },
        requestId: "x".repeat(201),
        webhook: { url: "not a url", eventTypes: ["task.exploded"] },
      }),
      Code.InvalidArgument,
    );
    const fields = badRequest(err)?.fieldViolations.map((v) => v.field) ?? [];
    expect(fields).toEqual(
      expect.arrayContaining([
        "max_attempts",
        "timeout",
        "labels[bad key!]",
        "request_id",
        "webhook.url",
        "webhook.event_types[0]",
      ]),
    );
  });

  it("input nested deeper than the limit is INVALID_ARGUMENT", async () => {
    let deep: unknown = "leaf";
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const err = await expectCode(
      agentd.client.tasks.createTask({ agent: "simulate", input: value({ output: deep }) }),
      Code.InvalidArgument,
    );
    expect(err.message).toMatch(/nested deeper/);
  });

  it("an oversized request is RESOURCE_EXHAUSTED", async () => {
    const err = await expectCode(
      agentd.client.tasks.createTask({ agent: "summarize", input: value({ text: "word ".repeat(40_000) }) }),
      Code.ResourceExhausted,
    );
    expect(err.message.length).toBeGreaterThan(0);
  });
});

describe("authentication and scopes", () => {
  it("no key is UNAUTHENTICATED; a bad key too", async () => {
    await expectCode(agentd.clients("").tasks.listTasks({}), Code.Unauthenticated);
    const err = await expectCode(agentd.clients("agentd_notakey").tasks.listTasks({}), Code.Unauthenticated);
    expect(errorInfo(err)?.reason).toBe("INVALID_API_KEY");
  });

  it("a key without the scope is PERMISSION_DENIED", async () => {
    const reader = agentd.clients(await agentd.createKey("t1", ["tasks:read"]));
    await reader.tasks.listTasks({});
    const err = await expectCode(reader.tasks.createTask({ agent: "simulate" }), Code.PermissionDenied);
    expect(err.message).toContain("tasks:write");
    await expectCode(reader.agents.run({ agent: "simulate" }), Code.PermissionDenied);
  });

  it("another tenant's task is NOT_FOUND, never PERMISSION_DENIED", async () => {
    const { task } = await agentd.client.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) });
    const other = agentd.clients(await agentd.createKey("t2"));
    await expectCode(other.tasks.getTask({ taskId: task!.id }), Code.NotFound);
    await expectCode(other.tasks.cancelTask({ taskId: task!.id }), Code.NotFound);
    await expectCode(other.tasks.deleteTask({ taskId: task!.id }), Code.NotFound);
    await expectCode(other.tasks.waitTask({ taskId: task!.id }), Code.NotFound);
    await expectCode(other.tasks.listTaskEvents({ taskId: task!.id }), Code.NotFound);
    expect((await other.tasks.listTasks({})).tasks).toHaveLength(0);
  });

  it("health and reflection need no key", async () => {
    const res = await fetch(`${agentd.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(await res.json()).toEqual({ status: "SERVING" });
  });
});

describe("malformed binary in every protocol", () => {
  const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]);

  it("gRPC (grpc-js, HTTP/2): a body that is not protobuf is INVALID_ARGUMENT", async () => {
    const client = new grpc.Client(`127.0.0.1:${agentd.port}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${agentd.key}`);
    const code = await new Promise<number>((resolve) => {
      client.makeUnaryRequest(
        "/agentd.v1.TaskService/GetTask",
        () => Buffer.from(garbage),
        (b: Buffer) => b,
        {},
        metadata,
        (err) => resolve(err?.code ?? 0),
      );
    });
    client.close();
    expect(code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it.each(["application/grpc-web+proto", "application/proto"])(
    "%s over HTTP/1.1: INVALID_ARGUMENT",
    async (contentType) => {
      const framed =
        contentType === "application/proto" ? garbage : new Uint8Array([0, 0, 0, 0, garbage.length, ...garbage]);
      const res = await fetch(`${agentd.url}/agentd.v1.TaskService/GetTask`, {
        method: "POST",
        headers: { "content-type": contentType, authorization: `Bearer ${agentd.key}` },
        body: framed,
      });
      const text = Buffer.from(await res.arrayBuffer()).toString("latin1");
      if (contentType === "application/proto") {
        expect(res.status).toBe(400);
        expect(JSON.parse(text).code).toBe("invalid_argument");
      } else {
        expect(res.headers.get("grpc-status") ?? /grpc-status: ?(\d+)/.exec(text)?.[1]).toBe("3");
      }
    },
  );
});

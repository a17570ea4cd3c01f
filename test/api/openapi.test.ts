// The OpenAPI document (generated from proto/ by scripts/protoc-gen-openapi):
// valid OpenAPI 3.1 by a stock validator, served at /openapi.json with the
// reference page at /docs, and true: operations called exactly as the document
// describes them answer what it says, in the schemas it gives.
import { readdir, readFile } from "node:fs/promises";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, startAgentd, type TestAgentd } from "../support/agentd.js";

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { type: string; scheme: string }> };
};
type Operation = {
  operationId: string;
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
};

let doc: Doc;
let server: TestAgentd;

beforeAll(async () => {
  doc = JSON.parse(await readFile(`${repoRoot}gen/openapi/agentd.openapi.json`, "utf8")) as Doc;
  server = await startAgentd();
});
afterAll(async () => {
  await server?.close();
});

/** Connect's HTTP status for each code (connectrpc.com/docs/protocol#error-codes). */
const CONNECT_STATUS: Record<string, number> = {
  INVALID_ARGUMENT: 400,
  FAILED_PRECONDITION: 400,
  OUT_OF_RANGE: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  ABORTED: 409,
  RESOURCE_EXHAUSTED: 429,
  UNIMPLEMENTED: 501,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};

interface ProtoRpc {
  path: string;
  comment: string;
  streaming: boolean;
}

/** Every rpc of proto/agentd, with its leading comment, read from the .proto text itself. */
async function protoRpcs(): Promise<ProtoRpc[]> {
  const rpcs: ProtoRpc[] = [];
  for (const file of (await readdir(`${repoRoot}proto/agentd/v1`)).filter((f) => f.endsWith(".proto"))) {
    const text = await readFile(`${repoRoot}proto/agentd/v1/${file}`, "utf8");
    for (const service of text.matchAll(/^service (\w+) \{([\s\S]*?)^\}/gm)) {
      for (const rpc of service[2]!.matchAll(
        /((?:^ {2}\/\/.*\n)+)^ {2}rpc (\w+)\((stream )?\w+\) returns \((stream )?/gm,
      )) {
        rpcs.push({
          path: `/agentd.v1.${service[1]}/${rpc[2]}`,
          comment: rpc[1]!
            .replace(/^ {2}\/\/ ?/gm, "")
            .replace(/\s+/g, " ")
            .trim(),
          streaming: Boolean(rpc[3] || rpc[4]),
        });
      }
    }
  }
  return rpcs;
}

/** Checks a body against a schema of the document (its $refs resolved within it). */
function checker() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addSchema({ $id: "openapi.json", components: doc.components } as object);
  return (schema: unknown, body: unknown) => {
    const validate = ajv.compile({ $ref: `openapi.json#${((schema as { $ref: string }).$ref ?? "").slice(1)}` });
    const ok = validate(body);
    return ok ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  };
}

/** Calls an operation by its operationId, exactly as the document describes it. */
async function call(operationId: string, body: unknown, key = server.key) {
  const [path, methods] = Object.entries(doc.paths).find(([, ops]) =>
    Object.values(ops).some((o) => o.operationId === operationId),
  )!;
  const [method, operation] = Object.entries(methods).find(([, o]) => o.operationId === operationId)!;
  const scheme = doc.components.securitySchemes.bearerAuth!;
  expect(scheme).toMatchObject({ type: "http", scheme: "bearer" });
  const res = await fetch(`${server.url}${path}`, {
    method: method.toUpperCase(),
    headers: { "content-type": Object.keys(operation.requestBody!.content)[0]!, authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as unknown;
  const described = operation.responses[String(res.status)];
  expect(described, `${operationId} answered ${res.status}, which the document does not list`).toBeDefined();
  return { status: res.status, json, schema: described!.content!["application/json"]!.schema };
}

describe("OpenAPI document", () => {
  it("is valid OpenAPI 3.1 (stock validator)", async () => {
    const result = await new Validator().validate(doc as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\.1\./);
  });

  it("maps well-known types and 64-bit integers to their proto3 JSON forms", () => {
    const task = doc.components.schemas["agentd.v1.Task"] as { properties: Record<string, Record<string, unknown>> };
    expect(task.properties.createTime).toMatchObject({ type: "string", format: "date-time" });
    expect(task.properties.timeout).toMatchObject({ type: "string", pattern: expect.stringContaining("s$") });
    expect(task.properties.lastSequence).toMatchObject({ type: "string", format: "int64" });
    expect(task.properties.input).not.toHaveProperty("type"); // google.protobuf.Value: any JSON
    expect((doc.components.schemas["agentd.v1.TaskState"] as { enum: string[] }).enum).toContain(
      "TASK_STATE_SUCCEEDED",
    );
    const artifact = doc.components.schemas["agentd.v1.Artifact"] as {
      properties: Record<string, Record<string, unknown>>;
    };
    expect(artifact.properties.data).toMatchObject({ type: "string", contentEncoding: "base64" });
    expect(doc.paths["/agentd.v1.TaskService/GetTask"]!.post!.responses["404"]).toBeDefined();
    expect(doc.paths["/v1/tasks/{task_id}/events"]!.get).toBeDefined();
  });

  it("is served at /openapi.json, with a reference page at /docs from this port", async () => {
    const served = await fetch(`${server.url}/openapi.json`);
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual(doc);
    const page = await fetch(`${server.url}/docs`);
    expect(page.headers.get("content-type")).toContain("text/html");
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//); // nothing from a CDN
    for (const src of [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)) {
      const asset = await fetch(`${server.url}${src}`);
      expect(asset.status, src).toBe(200);
      await asset.arrayBuffer();
    }
  });

  it("operations answer as documented: ListAgents, CreateTask, GetTask, ListTasks and a documented error", async () => {
    const check = checker();
    const agents = await call("AgentService_ListAgents", {});
    expect(agents.status).toBe(200);
    expect(check(agents.schema, agents.json)).toEqual([]);

    const created = await call("TaskService_CreateTask", {
      agent: "simulate",
      input: { steps: 1 },
      labels: { via: "openapi" },
      timeout: "30s",
    });
    expect(created.status).toBe(200);
    expect(check(created.schema, created.json)).toEqual([]);
    const taskId = (created.json as { task: { id: string } }).task.id;

    const got = await call("TaskService_GetTask", { taskId });
    expect(got.status).toBe(200);
    expect(check(got.schema, got.json)).toEqual([]);

    const listed = await call("TaskService_ListTasks", { labels: { via: "openapi" }, pageSize: 5 });
    expect(check(listed.schema, listed.json)).toEqual([]);
    expect((listed.json as { tasks: unknown[] }).tasks).toHaveLength(1);

    const missing = await call("TaskService_GetTask", { taskId: "01a23cf6-0402-728b-b2da-a19992758f78" });
    expect(missing.status).toBe(404);
    expect(check(missing.schema, missing.json)).toEqual([]);
    const invalid = await call("TaskService_CreateTask", { agent: "simulate", input: { steps: "many" } });
    expect(invalid.status).toBe(400);
    expect(check(invalid.schema, invalid.json)).toEqual([]);
    const unauthenticated = await call("TaskService_GetTask", { taskId }, "agentd_wrong");
    expect(unauthenticated.status).toBe(401);
  });

  it("has a path for every unary RPC in proto/, with its proto comment and its error codes as Connect's statuses", async () => {
    const rpcs = await protoRpcs();
    const unary = rpcs.filter((r) => !r.streaming);
    expect(unary.length).toBeGreaterThanOrEqual(20);
    for (const rpc of unary) {
      const operation = doc.paths[rpc.path]?.post as (Operation & { description?: string }) | undefined;
      expect(operation, `${rpc.path} has no path in the document`).toBeDefined();
      expect(operation!.description?.replace(/\s+/g, " ").trim(), rpc.path).toBe(rpc.comment);
      // Every caller can meet these; the codes the comment names come on top.
      const named = [...(rpc.comment.split("Errors:")[1] ?? "").matchAll(/`([A-Z_]+)`/g)]
        .map((m) => m[1]!)
        .filter((code) => code in CONNECT_STATUS);
      for (const code of ["UNAUTHENTICATED", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "UNAVAILABLE", ...named]) {
        const response = operation!.responses[String(CONNECT_STATUS[code])];
        expect(response, `${rpc.path}: ${code} (HTTP ${CONNECT_STATUS[code]}) is not listed`).toBeDefined();
        expect(response!.content!["application/json"]!.schema).toEqual({ $ref: "#/components/schemas/connect.Error" });
      }
    }
    // Streaming RPCs have no JSON POST path (the SSE route serves WatchTask).
    for (const rpc of rpcs.filter((r) => r.streaming)) expect(doc.paths[rpc.path], rpc.path).toBeUndefined();
    const documented = Object.keys(doc.paths).filter((p) => p.startsWith("/agentd."));
    expect(documented.sort()).toEqual(unary.map((r) => r.path).sort());
  });
});

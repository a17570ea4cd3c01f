// Traces leave the process: `agentd serve` configured only with the standard
// OTEL_* variables sends its spans, OTLP over HTTP/protobuf, to a receiver this
// test runs on loopback (tracing.test.ts covers the spans themselves, in memory).
// It samples with OTEL_TRACES_SAMPLER=parentbased_traceidratio at ratio 0: a
// caller's sampled trace is continued, nothing else is traced. The same run has
// AGENTD_ACCESS_LOG_LEVEL=silent: no access-log line at all.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { type AgentdProcess, clientsFor, spawnAgentd, spawnAgentdCommand } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { value } from "../support/json.js";

interface Export {
  path: string;
  contentType: string | undefined;
  body: Buffer;
}

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let db: Database;
let key: string;
let collector: Server;
const exports: Export[] = [];
let agentd: AgentdProcess;

beforeAll(async () => {
  // The OTLP/HTTP receiver: takes every POST and answers an empty ExportTraceServiceResponse.
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      exports.push({ path: req.url ?? "", contentType: req.headers["content-type"], body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  const { port } = collector.address() as AddressInfo;

  shared = await startSharedTestDatabase();
  db = await openDatabase({ url: shared.url, dataDir: "unused", maxConnections: 1 });
  await runMigrations(db.sql);
  key = (await createApiKey(db.sql, { tenantId: "otel", scopes: [...SCOPES] })).key;
  agentd = await spawnAgentd({
    databaseUrl: shared.url,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_SERVICE_NAME: "agentd-otlp-test",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0",
      AGENTD_ACCESS_LOG_LEVEL: "silent",
    },
  });
});

afterAll(async () => {
  await agentd?.kill("SIGKILL");
  await new Promise((resolve) => collector?.close(resolve));
  await db?.close();
  await shared?.close();
});

describe("OTLP export", () => {
  it("sends the RPC, queue and run spans of a traced task to the configured OTLP/HTTP endpoint", async () => {
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const client = clientsFor(agentd.url, key);
    const { task } = await client.tasks.createTask(
      { agent: "simulate", input: value({ steps: 1, step_delay_ms: 1 }) },
      { headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } },
    );
    const done = await client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 20n } });
    expect(done.task?.state).toBe(TaskState.SUCCEEDED);
    // No traceparent: a root span, which ratio 0 does not sample.
    const { task: untraced } = await client.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) });
    await client.tasks.waitTask({ taskId: untraced!.id, timeout: { seconds: 20n } });
    // A graceful stop flushes the batch still buffered.
    expect(await agentd.kill("SIGTERM")).toBe(0);

    expect(exports.length).toBeGreaterThanOrEqual(1);
    for (const e of exports) {
      expect(e.path).toBe("/v1/traces");
      expect(e.contentType).toBe("application/x-protobuf");
    }
    // Protobuf carries strings and the 16-byte trace id as they are: find them in the bytes sent.
    const sent = Buffer.concat(exports.map((e) => e.body));
    expect(sent.includes(Buffer.from(traceId, "hex"))).toBe(true);
    for (const text of ["agentd-otlp-test", "agentd.v1.TaskService/CreateTask", "task.queue", "agent.run simulate"])
      expect(sent.includes(Buffer.from(text)), text).toBe(true);
    expect(sent.includes(Buffer.from(task!.id))).toBe(true);
    expect(sent.includes(Buffer.from(untraced!.id))).toBe(false);

    // AGENTD_ACCESS_LOG_LEVEL=silent: RPCs were served, and none was logged.
    expect(agentd.logs.some((l) => l.msg === "agentd is serving")).toBe(true);
    expect(agentd.logs.filter((l) => l.msg === "rpc")).toEqual([]);
  });

  it("refuses to start with a sampler the spec does not name, naming the variable (exit 2)", async () => {
    const failed = await spawnAgentdCommand("serve", {
      databaseUrl: shared.url,
      ready: "agentd is serving",
      args: ["--port", "0"],
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9", OTEL_TRACES_SAMPLER: "sometimes" },
    }).then(
      () => undefined,
      (error: Error) => error.message,
    );
    expect(failed).toContain("exited (2)");
    expect(failed).toContain('invalid setting OTEL_TRACES_SAMPLER="sometimes"');
  });
});

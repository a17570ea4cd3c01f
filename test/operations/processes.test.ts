// Two `agentd serve` processes on one database, as in production: a key revoked
// through one stops working on both within 5 s; /metrics counts RPCs and tasks;
// every RPC leaves one access-log line; no log line holds a secret (keys, signing secrets,
// access tokens used or refused).
import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/agentd/v1/auth_service_pb.js";
import { KeyService } from "../../gen/agentd/v1/key_service_pb.js";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { type AgentdProcess, clientsFor, spawnAgentd, transportFor } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { expectCode } from "../support/expect.js";
import { value } from "../support/json.js";

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let db: Database;
let adminKey: string;
let adminKeyId: string;
let a: AgentdProcess;
let b: AgentdProcess;
/** Every secret this run created: none may appear in any log line. */
const secrets: string[] = [];

beforeAll(async () => {
  shared = await startSharedTestDatabase();
  db = await openDatabase({ url: shared.url, dataDir: "unused", maxConnections: 1 });
  await runMigrations(db.sql);
  const admin = await createApiKey(db.sql, { tenantId: "ops", scopes: [...SCOPES] });
  adminKey = admin.key;
  adminKeyId = admin.info.keyId;
  secrets.push(adminKey);
  // debug: the most a log could say. The access log at a level other than the default, to see it applied.
  const env = {
    AGENTD_LOG_LEVEL: "debug",
    AGENTD_ACCESS_LOG_LEVEL: "debug",
    AGENTD_WEBHOOK_ALLOW_HTTP: "true",
    AGENTD_WEBHOOK_ALLOW_CIDRS: "127.0.0.0/8",
  };
  [a, b] = await Promise.all([
    spawnAgentd({ databaseUrl: shared.url, env }),
    spawnAgentd({ databaseUrl: shared.url, env }),
  ]);
});

afterAll(async () => {
  await Promise.all([a?.kill("SIGKILL"), b?.kill("SIGKILL")]);
  await db?.close();
  await shared?.close();
});

const keysAt = (p: AgentdProcess, key: string) => createClient(KeyService, transportFor(p.url, "connect", key));

async function scrape(p: AgentdProcess): Promise<string> {
  const res = await fetch(`${p.url}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one sample line, e.g. metric('agentd_rpcs_total{service="…",method="…",code="ok"}'). */
function sample(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe("two replicas", () => {
  it("a key revoked through one replica stops working on both within 5 s", async () => {
    const { key, secret } = await keysAt(a, adminKey).createKey({ scopes: ["tasks:read"], name: "short-lived" });
    secrets.push(secret);
    // Both replicas have authenticated (and cached) the key.
    await clientsFor(a.url, secret).tasks.listTasks({});
    await clientsFor(b.url, secret).tasks.listTasks({});
    await keysAt(a, adminKey).revokeKey({ keyId: key!.id });
    const revokedAt = Date.now();
    const refusedAfter = await Promise.all(
      [a, b].map(async (p) => {
        for (;;) {
          const refused = await clientsFor(p.url, secret)
            .tasks.listTasks({})
            .then(
              () => false,
              (e: { code?: Code }) => e.code === Code.Unauthenticated,
            );
          if (refused) return Date.now() - revokedAt;
          if (Date.now() - revokedAt > 15_000) return Number.POSITIVE_INFINITY;
          await new Promise((r) => setTimeout(r, 100));
        }
      }),
    );
    // The promise is 5 s (README, KeyService). The cache holds a key at most 3 s, which leaves
    // 2 s for the probing calls themselves on a loaded machine.
    for (const ms of refusedAfter) expect(ms).toBeLessThan(5_000);
  });

  it("/metrics counts RPCs by code, tasks by state, the queue, the database and the process", async () => {
    const client = clientsFor(a.url, adminKey);
    const { task } = await client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 2, step_delay_ms: 10 }),
    });
    await expectCode(client.tasks.getTask({ taskId: "00000000-0000-0000-0000-000000000000" }), Code.NotFound);
    await expectCode(clientsFor(a.url, "agentd_nope").tasks.listTasks({}), Code.Unauthenticated);
    const done = await client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 20n } });
    expect(done.task?.state).toBe(TaskState.SUCCEEDED);

    const text = await scrape(a);
    const rpc = (method: string, code: string) =>
      sample(text, `agentd_rpcs_total{service="agentd.v1.TaskService",method="${method}",code="${code}"}`);
    expect(rpc("CreateTask", "ok")).toBeGreaterThanOrEqual(1);
    expect(rpc("GetTask", "not_found")).toBe(1);
    expect(rpc("ListTasks", "unauthenticated")).toBeGreaterThanOrEqual(1);
    expect(
      sample(text, 'agentd_rpc_duration_seconds_count{service="agentd.v1.TaskService",method="CreateTask"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'agentd_tasks_created_total{agent="simulate"}')).toBe(1);
    expect(text).toContain("# TYPE agentd_tasks_queued gauge");
    expect(sample(text, "agentd_db_up")).toBe(1);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).toContain("# TYPE agentd_streams_open gauge");
    // The task ran on one of the two replicas: together they saw it queued, started and end.
    const both = [text, await scrape(b)];
    const total = (series: string) => both.reduce((n, t) => n + sample(t, series), 0);
    expect(total('agentd_tasks_finished_total{agent="simulate",state="SUCCEEDED"}')).toBe(1);
    expect(total('agentd_task_queue_seconds_count{agent="simulate"}')).toBe(1);
    expect(total('agentd_task_run_seconds_count{agent="simulate",state="SUCCEEDED"}')).toBe(1);
  });

  it("writes one access-log line per RPC and no secret in any log line", async () => {
    const client = clientsFor(b.url, adminKey);
    const endpoint = await client.webhooks.createWebhookEndpoint({
      url: "http://127.0.0.1:9/hook",
      eventTypes: ["task.succeeded"],
    });
    secrets.push(endpoint.signingSecret);
    const rotated = await client.webhooks.rotateWebhookSecret({});
    secrets.push(rotated.signingSecret);
    const made = await keysAt(b, adminKey).createKey({ scopes: ["all"] });
    secrets.push(made.secret);
    // Access tokens, used and refused (Connect and SSE), are never logged either.
    const { accessToken } = await createClient(AuthService, transportFor(b.url, "connect", adminKey)).createAccessToken(
      { scopes: ["tasks:read"] },
    );
    const forged = `${accessToken.slice(0, -6)}AAAAAA`;
    secrets.push(accessToken, forged);
    await clientsFor(b.url, accessToken).tasks.listTasks({});
    await expectCode(clientsFor(b.url, forged).tasks.listTasks({}), Code.Unauthenticated);
    for (const token of [accessToken, forged]) {
      const sse = await fetch(`${b.url}/v1/tasks/00000000-0000-7000-8000-000000000000/events`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect([401, 404]).toContain(sse.status);
      await sse.body?.cancel();
    }
    await client.tasks.listTasks({}, { headers: { "x-request-id": "trace-me-42" } });
    await expectCode(clientsFor(b.url, `${adminKey}x`).tasks.listTasks({}), Code.Unauthenticated);
    // Shut both down, so every line is written.
    await Promise.all([a.kill("SIGTERM"), b.kill("SIGTERM")]);

    const access = b.logs.filter((l) => l.msg === "rpc");
    const listed = access.find((l) => l.requestId === "trace-me-42");
    expect(listed).toMatchObject({
      level: 20, // pino's debug: AGENTD_ACCESS_LOG_LEVEL
      rpc: "agentd.v1.TaskService/ListTasks",
      code: "ok",
      tenant: "ops",
      keyId: adminKeyId,
    });
    expect(listed?.ms).toBeGreaterThanOrEqual(0);
    expect(access.every((l) => l.level === 20)).toBe(true);
    // Every RPC has a request id: the caller's, or one the server made up.
    expect(access.every((l) => typeof l.requestId === "string" && l.requestId.length > 0)).toBe(true);
    expect(access.find((l) => l.code === "unauthenticated")).toMatchObject({ rpc: "agentd.v1.TaskService/ListTasks" });
    expect(access.filter((l) => l.rpc === "agentd.v1.KeyService/CreateKey")).toHaveLength(1);

    const everything = JSON.stringify([...a.logs, ...b.logs]);
    expect(secrets.length).toBeGreaterThanOrEqual(7);
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(20);
      expect(everything).not.toContain(secret);
      // Nor a telling part of it.
      expect(everything).not.toContain(secret.slice(-16));
    }
  });
});

// A replica started without a writable primary (issue 14): `agentd serve`
// pointed at a hot standby, or at a port where no server runs yet, does not
// exit. It listens, answers UNAVAILABLE (DATABASE_UNAVAILABLE with RetryInfo)
// from a real client, reports NOT_SERVING (gRPC health, /readyz) while /healthz
// stays OK, and serves by itself once a primary exists (the standby promoted,
// a server started): CreateTask, then WaitTask SUCCEEDED, without a restart.
// A configuration the server refuses (a database that does not exist) and a
// malformed URL still end start-up at once, with a clear message.
//
// Clusters as in failover.test.ts (test/chaos/cluster.ts; own folders and
// ports, never the machine's server). Runs in the real-Postgres run
// (DATABASE_URL set) or with AGENTD_CHAOS=1, skips in the embedded run.
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import {
  type AgentdProcess,
  CHILD_TEST_ENV,
  clientsFor,
  repoRoot,
  spawnAgentdCommand,
  transportFor,
} from "../support/agentd.js";
import { value } from "../support/json.js";
import { clusterUnavailableReason, freePort, type PostgresCluster, startCluster, startStandby } from "./cluster.js";

const wanted = Boolean(process.env.DATABASE_URL) || process.env.AGENTD_CHAOS === "1";
const missing = clusterUnavailableReason();
const skipReason = !wanted
  ? "standby start-up suite: runs only with DATABASE_URL set (the real-Postgres run) or AGENTD_CHAOS=1"
  : missing && process.env.CI !== "true"
    ? `standby start-up suite skipped: ${missing}`
    : undefined;
if (skipReason) console.warn(skipReason);

const clusters: PostgresCluster[] = [];
const processes: AgentdProcess[] = [];
let primary: PostgresCluster;
let standby: PostgresCluster;

beforeAll(async () => {
  if (skipReason) return;
  primary = await startCluster({ settings: { wal_level: "replica", max_wal_senders: "5" } });
  clusters.push(primary);
  standby = await startStandby(primary);
  clusters.push(standby);
}, 180_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  for (const c of clusters.reverse()) await c.destroy();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WAITING = "agentd is waiting for a database primary";

async function until<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    const v = await fn().catch((error: unknown) => {
      last = error;
      return undefined;
    });
    if (v !== undefined && ok(v)) return v;
    if (v !== undefined) last = v;
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not within ${ms} ms; last: ${String(last instanceof Error ? last.message : last).slice(0, 300)}`,
      );
    await sleep(everyMs);
  }
}

async function spawnWaiting(databaseUrl: string): Promise<AgentdProcess> {
  const p = await spawnAgentdCommand("serve", {
    databaseUrl,
    ready: WAITING,
    args: ["--port", "0"],
    readyTimeoutMs: 60_000,
  });
  processes.push(p);
  return p;
}

/** Asserts what a waiting replica answers: UNAVAILABLE (retryable, with RetryInfo), NOT_SERVING, /readyz 503, /healthz 200. */
async function expectWaiting(p: AgentdProcess, key: string): Promise<void> {
  const error = await clientsFor(p.url, key)
    .tasks.createTask({ agent: "simulate", input: value({ steps: 1 }) }, { timeoutMs: 20_000 })
    .then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
  expect(error?.code, String(error)).toBe(Code.Unavailable);
  expect(error!.findDetails(ErrorInfoSchema)[0]?.reason).toBe("DATABASE_UNAVAILABLE");
  expect(error!.findDetails(RetryInfoSchema)).toHaveLength(1);
  const health = await createClient(Health, transportFor(p.url, "connect")).check(
    { service: "" },
    { timeoutMs: 10_000 },
  );
  expect(health.status).toBe(Serving.NOT_SERVING);
  expect((await fetch(`${p.url}/readyz`)).status).toBe(503);
  expect((await fetch(`${p.url}/healthz`)).status).toBe(200);
  expect(p.child.exitCode).toBeNull();
}

/** Waits until the same process serves: CreateTask OK, then WaitTask SUCCEEDED, health SERVING; returns ms to the first OK. */
async function expectServes(p: AgentdProcess, key: string, since: number): Promise<number> {
  const client = clientsFor(p.url, key);
  const { task } = await until(
    "first CreateTask OK once a primary exists",
    () =>
      client.tasks.createTask(
        { agent: "simulate", input: value({ steps: 2, step_delay_ms: 20 }) },
        { timeoutMs: 5000 },
      ),
    () => true,
    60_000,
    50,
  );
  const firstOkMs = Date.now() - since;
  const done = await client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 30n } }, { timeoutMs: 40_000 });
  expect(done.task?.state).toBe(TaskState.SUCCEEDED);
  await until(
    "health SERVING",
    () => createClient(Health, transportFor(p.url, "connect")).check({ service: "" }, { timeoutMs: 5000 }),
    (r) => r.status === Serving.SERVING,
    30_000,
  );
  await until(
    "/readyz 200",
    () => fetch(`${p.url}/readyz`).then((r) => r.status),
    (s) => s === 200,
    30_000,
  );
  expect(p.child.exitCode).toBeNull();
  expect(p.logs.some((l) => l.msg === "agentd is serving")).toBe(true);
  return firstOkMs;
}

/** Runs `agentd serve` expecting it to exit at start-up; returns its exit code and stderr. */
async function serveExpectingExit(databaseUrl: string): Promise<{ code: number | null; stderr: string }> {
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, [`${repoRoot}bin/agentd.js`, "serve", "--port", "0"], {
    cwd: repoRoot,
    env: { ...process.env, ...CHILD_TEST_ENV, DATABASE_URL: databaseUrl },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stderr };
}

/** Until the standby has replayed everything the primary has written so far. */
async function caughtUp(): Promise<void> {
  const lsn = await primary.psql("SELECT pg_current_wal_lsn()");
  await until(
    "the standby replays the primary's writes",
    () => standby.psql(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`),
    (v) => v === "t",
    30_000,
  );
}

describe.skipIf(skipReason !== undefined)("a replica started without a writable primary", () => {
  it("refuses a database that does not exist and a malformed URL at once, without the password", async () => {
    const password = "not-a-real-secret-2718";
    const unknown = await serveExpectingExit(
      `postgres://postgres:${password}@127.0.0.1:${primary.port}/no_such_db_${randomBytes(3).toString("hex")}`,
    );
    expect(unknown.code, unknown.stderr).toBe(1);
    expect(unknown.stderr).toMatch(/does not exist/);
    expect(unknown.stderr).not.toContain(password);
    const malformed = await serveExpectingExit(`postgres://postgres:${password}@127.0.0.1:99999/x`);
    expect(malformed.code, malformed.stderr).not.toBe(0);
    expect(malformed.stderr).toMatch(/postgres:\/\/ URL|DATABASE_URL/);
    expect(malformed.stderr).not.toContain(password);
  }, 120_000);

  it("answers UNAVAILABLE on a standby and serves by itself once it is promoted", async () => {
    const name = `standby_${randomBytes(4).toString("hex")}`;
    const primaryUrl = await primary.createDatabase(name);
    let key: string;
    {
      const db = await openDatabase({ url: primaryUrl, maxConnections: 1 });
      await runMigrations(db.sql);
      ({ key } = await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] }));
      await db.close();
    }
    await caughtUp();
    const replica = await spawnWaiting(`postgres://postgres@127.0.0.1:${standby.port}/${name}`);
    await expectWaiting(replica, key);
    // Still waiting a few seconds later, and saying so in its log (no exit, no restart).
    await sleep(3000);
    await expectWaiting(replica, key);
    expect(replica.logs.some((l) => String(l.msg).startsWith("waiting for a writable database primary"))).toBe(true);

    // Fence the old primary, then promote, as an HA manager would.
    await primary.stop("fast");
    await standby.promote();
    const promotedAt = Date.now();
    const firstOkMs = await expectServes(replica, key, promotedAt);
    console.info(`standby start-up: first CreateTask OK ${firstOkMs} ms after promotion`);
    expect(firstOkMs).toBeLessThan(15_000);
  }, 240_000);

  it("answers UNAVAILABLE while nothing listens on its port and serves once a server starts there", async () => {
    const port = await freePort();
    // Database `postgres`: it exists as soon as the server does (an unknown one would end start-up, as above).
    const replica = await spawnWaiting(`postgres://postgres@127.0.0.1:${port}/postgres`);
    // No server, so no key can exist yet: any key answers UNAVAILABLE before authentication.
    await expectWaiting(replica, "agentd_k_not_checked_while_waiting");
    const cluster = await startCluster({ port });
    clusters.push(cluster);
    const startedAt = Date.now();
    // The replica migrates the new server itself; the test then makes a key there.
    const key = await until(
      "the replica migrated the new server",
      async () => {
        const sql = postgres(cluster.url, { max: 1, onnotice: () => {} });
        try {
          const [row] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM schema_migrations`;
          if (!row || row.n === 0) return undefined;
          const db = await openDatabase({ url: cluster.url, maxConnections: 1 });
          try {
            return (await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] })).key;
          } finally {
            await db.close();
          }
        } finally {
          await sql.end();
        }
      },
      (k) => typeof k === "string",
      60_000,
      200,
    );
    const firstOkMs = await expectServes(replica, key!, startedAt);
    console.info(`unreachable start-up: first CreateTask OK ${firstOkMs} ms after the server started`);
  }, 240_000);
});

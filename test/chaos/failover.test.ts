// Failover (issue 14): a primary and a synchronous hot standby this test starts
// itself (test/chaos/cluster.ts; own folders and ports, never the machine's
// server), two agentd replicas and a notifier on the standard multi-host URL
// (postgres://h1:p1,h2:p2/db?target_session_attrs=primary) under load; the
// primary is killed (pg_ctl stop -m immediate) and the standby promoted, as an
// HA manager would. Asserted: no acknowledged task lost, none failed, no result
// changed, no event under two webhook-ids, watchers exactly-once across the
// switch, UNAVAILABLE (never INTERNAL, never a hang) while there is no primary,
// and the first OK within a generous bound after promotion. A client pointed at
// the standby alone answers UNAVAILABLE and recovers by itself once it is promoted.
//
// Like chaos.test.ts: runs in the real-Postgres run (DATABASE_URL set) or with
// AGENTD_CHAOS=1, skips in the embedded run.
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { isDatabaseUnavailable, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import {
  type AgentdProcess,
  type Clients,
  clientsFor,
  spawnAgentd,
  spawnAgentdCommand,
  transportFor,
} from "../support/agentd.js";
import { value } from "../support/json.js";
import { until } from "../support/until.js";
import { NOTIFIER_TEST_ENV, type Receiver, startReceiver } from "../webhooks/support.js";
import { clusterUnavailableReason, type PostgresCluster, startCluster, startStandby } from "./cluster.js";

const wanted = Boolean(process.env.DATABASE_URL) || process.env.AGENTD_CHAOS === "1";
const missing = clusterUnavailableReason();
const skipReason = !wanted
  ? "failover suite: runs only with DATABASE_URL set (the real-Postgres run) or AGENTD_CHAOS=1"
  : missing && process.env.CI !== "true"
    ? `failover suite skipped: ${missing}`
    : undefined;
if (skipReason) console.warn(skipReason);

let primary: PostgresCluster;
let standby: PostgresCluster;
const processes: AgentdProcess[] = [];
const receivers: Receiver[] = [];
const stderrs = new Map<AgentdProcess, string>();

beforeAll(async () => {
  if (skipReason) return;
  primary = await startCluster({ settings: { wal_level: "replica", max_wal_senders: "5" } });
  standby = await startStandby(primary, { synchronous: true });
}, 180_000);

afterAll(async () => {
  // AGENTD_FAILOVER_DEBUG=/tmp/prefix: each child's logs and stderr to /tmp/prefix-N.log.
  if (process.env.AGENTD_FAILOVER_DEBUG) {
    const { writeFileSync } = await import("node:fs");
    for (const [i, p] of processes.entries()) {
      const logs = p.logs.map((l) => JSON.stringify(l)).join("\n");
      writeFileSync(
        `${process.env.AGENTD_FAILOVER_DEBUG}-${i}.log`,
        `${p.url} exit ${p.child.exitCode}\n${logs}\n${stderrs.get(p) ?? ""}`,
      );
    }
  }
  await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  await Promise.all(receivers.map((r) => r.close()));
  await standby?.destroy();
  await primary?.destroy();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = new Set([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELED]);
const codeOf = (error: unknown) => ConnectError.from(error).code;

/** Follows a task with WatchTask, resuming after the last sequence seen, until it ends. */
async function watchToEnd(client: Clients, taskId: string, errors: Code[], deadline: number): Promise<number[]> {
  const seen: number[] = [];
  let after = 0n;
  while (Date.now() < deadline) {
    try {
      for await (const res of client.tasks.watchTask({ taskId, afterSequence: after })) {
        const event = res.event;
        if (!event) continue;
        seen.push(Number(event.sequence));
        after = event.sequence;
        if (event.event.case === "stateChange" && TERMINAL.has(event.event.value.state)) return seen;
      }
    } catch (error) {
      errors.push(codeOf(error));
    }
    await sleep(200);
  }
  return seen;
}

describe.skipIf(skipReason !== undefined)("primary failover to a synchronous standby under load", () => {
  it("loses, fails and changes nothing; UNAVAILABLE while there is no primary; recovers after promotion", async () => {
    // The database, migrated on the primary (and so on the standby).
    const name = `failover_${randomBytes(4).toString("hex")}`;
    const primaryUrl = await primary.createDatabase(name);
    const password = "not-a-real-secret-3141";
    const multiUrl = `postgres://postgres:${password}@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/${name}?target_session_attrs=primary`;
    let key: string;
    {
      const db = await openDatabase({ url: primaryUrl, maxConnections: 1 });
      await runMigrations(db.sql);
      ({ key } = await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] }));
      await db.close();
    }
    // A client of the standby alone: it must refuse to write there, as UNAVAILABLE, and say nothing secret.
    const standbyOnly = await openDatabase({
      url: `postgres://postgres:${password}@127.0.0.1:${standby.port}/${name}`,
      maxConnections: 2,
    });
    const onStandby = await standbyOnly.sql`INSERT INTO schema_migrations (version, name) VALUES (-1, 'probe')`.catch(
      (e: unknown) => e,
    );
    expect(isDatabaseUnavailable(onStandby), String(onStandby)).toBe(true);
    expect(String((onStandby as Error).message)).not.toContain(password);
    await expect(standbyOnly.ping()).rejects.toBeTruthy();

    const env = { ...NOTIFIER_TEST_ENV, AGENTD_LEASE_MS: "15000", AGENTD_HEARTBEAT_MS: "500", AGENTD_POLL_MS: "200" };
    const replicas: AgentdProcess[] = [];
    // A failure on a loaded CI machine is seen once: say how each replica ended, and what it logged last.
    onTestFailed(() => {
      for (const p of replicas) {
        const ended = p.child.exitCode ?? p.child.signalCode ?? "still running";
        const warnings = p.logs.filter((l) => Number(l.level) >= 40).slice(-10);
        console.error(
          `replica ${p.url}: ${ended}\n${warnings.map((l) => JSON.stringify(l)).join("\n")}\n${(stderrs.get(p) ?? "").slice(-4000)}`,
        );
      }
    });
    for (let i = 0; i < 2; i++) {
      const p = await spawnAgentd({ databaseUrl: multiUrl, env });
      processes.push(p);
      p.child.stderr?.on("data", (d: Buffer) => stderrs.set(p, (stderrs.get(p) ?? "") + d.toString()));
      replicas.push(p);
    }
    processes.push(
      await spawnAgentdCommand("notifier", { databaseUrl: multiUrl, ready: "agentd notifier is running", env }),
    );
    const receiver = await startReceiver();
    receivers.push(receiver);
    const clients = replicas.map((r) => clientsFor(r.url, key));
    await clients[0]!.webhooks.rotateWebhookSecret({});
    const webhook = { url: receiver.url, eventTypes: ["task.running", "task.succeeded"] };

    // Long tasks running across the switch, each followed by a watcher.
    const long: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { task } = await clients[i % 2]!.tasks.createTask({
        agent: "simulate",
        input: value({ steps: 30, step_delay_ms: 200 }),
        webhook,
      });
      long.push(task!.id);
    }
    const watchErrors: Code[] = [];
    const watched = long.map((id, i) => watchToEnd(clients[i % 2]!, id, watchErrors, Date.now() + 150_000));

    // Load: creators and readers on both replicas; a result once seen must never change.
    const acked: string[] = [...long];
    const results = new Map<string, string>();
    const changed: string[] = [];
    const failures: { code: Code; ms: number; message: string }[] = [];
    const noteResult = (task: { id: string; state: TaskState; output?: unknown } | undefined) => {
      if (!task || task.state !== TaskState.SUCCEEDED) return;
      const output = JSON.stringify(task.output ?? null);
      const before = results.get(task.id);
      if (before === undefined) results.set(task.id, output);
      else if (before !== output) changed.push(task.id);
    };
    let loading = true;
    const call = async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
      const started = Date.now();
      try {
        return await fn();
      } catch (error) {
        const e = ConnectError.from(error);
        failures.push({ code: e.code, ms: Date.now() - started, message: e.rawMessage });
        return undefined;
      } finally {
        await sleep(40);
      }
    };
    const loops = clients.flatMap((client) => [
      (async () => {
        while (loading) {
          const res = await call(() =>
            client.tasks.createTask(
              { agent: "simulate", input: value({ steps: 3, step_delay_ms: 100 }), webhook },
              { timeoutMs: 20_000 },
            ),
          );
          if (res?.task) acked.push(res.task.id);
        }
      })(),
      (async () => {
        while (loading) {
          const id = acked[Math.floor(Math.random() * acked.length)]!;
          const res = await call(() => client.tasks.getTask({ taskId: id }, { timeoutMs: 20_000 }));
          noteResult(res?.task);
        }
      })(),
    ]);

    await sleep(2500);
    await primary.stop("immediate");
    // No primary now: health says so, and a write answers UNAVAILABLE promptly.
    const health = replicas.map((r) => createClient(Health, transportFor(r.url, "connect")));
    for (const h of health) {
      await until(
        () => h.check({ service: "" }, { timeoutMs: 5000 }),
        (r) => r.status === Serving.NOT_SERVING,
        { what: "health NOT_SERVING without a primary", ms: 15_000, everyMs: 100, retryErrors: true },
      );
    }
    for (const r of replicas) {
      await until(
        () => fetch(`${r.url}/readyz`).then((res) => res.status),
        (status) => status === 503,
        { what: "/readyz 503 without a primary", ms: 15_000, everyMs: 100, retryErrors: true },
      );
    }
    const probeStart = Date.now();
    const probe = await clients[0]!.tasks
      .createTask({ agent: "simulate", input: value({ steps: 1 }) }, { timeoutMs: 20_000 })
      .catch((e: unknown) => ConnectError.from(e));
    const probeMs = Date.now() - probeStart;
    expect(probe).toBeInstanceOf(ConnectError);
    expect((probe as ConnectError).code).toBe(Code.Unavailable);

    await standby.promote();
    const promotedAt = Date.now();
    const recoveryMs = await Promise.all(
      clients.map(async (client) => {
        await until(
          () => client.tasks.createTask({ agent: "simulate", input: value({ steps: 1 }) }, { timeoutMs: 5000 }),
          () => true,
          { what: "first write OK after promotion", ms: 30_000, everyMs: 50, retryErrors: true },
        );
        return Date.now() - promotedAt;
      }),
    );
    const healthMs = await Promise.all(
      health.map(async (h) => {
        await until(
          () => h.check({ service: "" }, { timeoutMs: 5000 }),
          (r) => r.status === Serving.SERVING,
          { what: "health SERVING after promotion", ms: 30_000, everyMs: 50, retryErrors: true },
        );
        return Date.now() - promotedAt;
      }),
    );
    for (const r of replicas) {
      await until(
        () => fetch(`${r.url}/readyz`).then((res) => res.status),
        (status) => status === 200,
        { what: "/readyz 200 after promotion", ms: 30_000, everyMs: 50, retryErrors: true },
      );
    }
    // The standby-only client recovers by itself: its server is the primary now.
    await until(
      () => standbyOnly.ping().then(() => true),
      () => true,
      { what: "the standby-only client writes after promotion", ms: 15_000, everyMs: 100, retryErrors: true },
    );
    await standbyOnly.close();

    await sleep(2000);
    loading = false;
    await Promise.all(loops);

    const finals = await until(
      () => Promise.all(acked.map((taskId) => clients[0]!.tasks.getTask({ taskId }, { timeoutMs: 10_000 }))),
      (all) => all.every((r) => r.task && TERMINAL.has(r.task.state)),
      { what: "every acknowledged task ended", ms: 120_000, everyMs: 500, retryErrors: true },
    );
    for (const r of finals) noteResult(r.task);
    const unavailableMs = failures.filter((f) => f.code === Code.Unavailable).map((f) => f.ms);
    console.info(
      `failover: ${acked.length} tasks acknowledged, ${failures.length} calls failed without a primary ` +
        `(slowest ${Math.max(0, ...unavailableMs)} ms, probe ${probeMs} ms); first write OK ${recoveryMs.join(", ")} ms and health SERVING ${healthMs.join(", ")} ms after promotion`,
    );
    // 0 lost (every acknowledged task is found: GetTask would have failed with NOT_FOUND), 0 failed, 0 changed.
    expect(
      finals
        .filter((r) => r.task!.state !== TaskState.SUCCEEDED)
        .map((r) => ({ id: r.task!.id, error: r.task!.error })),
    ).toEqual([]);
    expect(changed).toEqual([]);
    // Only UNAVAILABLE while there was no primary; no internals, no password.
    expect(new Set(failures.map((f) => Code[f.code]))).toEqual(new Set(failures.length ? ["Unavailable"] : []));
    for (const f of failures) {
      expect(f.message).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|:\d{4,5}\b|postgres/i);
      expect(f.message).not.toContain(password);
    }
    expect(probeMs).toBeLessThan(10_000);
    for (const ms of recoveryMs) expect(ms).toBeLessThan(15_000);
    for (const ms of healthMs) expect(ms).toBeLessThan(15_000);
    for (const p of processes) expect(JSON.stringify(p.logs)).not.toContain(password);

    // Watchers: every event exactly once, in order, to the end.
    const seen = await Promise.all(watched);
    for (const [i, taskId] of long.entries()) {
      const { events } = await clients[0]!.tasks.listTaskEvents({ taskId, pageSize: 1000 }, { timeoutMs: 10_000 });
      expect(seen[i], `watcher of ${taskId}`).toEqual(events.map((e) => Number(e.sequence)));
      expect(seen[i]).toEqual(seen[i]!.map((_, k) => k + 1));
    }
    expect(watchErrors.every((c) => c === Code.Unavailable)).toBe(true);

    // Webhooks: every task.succeeded arrives; an event delivered twice carries the same webhook-id.
    await receiver.until(
      (got) =>
        new Set(got.map((r) => JSON.parse(r.body).type === "task.succeeded" && JSON.parse(r.body).data.task.id)).size >=
        acked.length,
      60_000,
    );
    const byEvent = new Map<string, Set<string>>();
    for (const r of receiver.received) {
      const body = JSON.parse(r.body) as { data: { task: { id: string }; sequence: string | number } };
      const k = `${body.data.task.id}/${body.data.sequence}`;
      byEvent.set(k, (byEvent.get(k) ?? new Set()).add(String(r.headers["webhook-id"])));
    }
    for (const [k, ids] of byEvent) expect(ids.size, `event ${k} under several webhook-ids`).toBe(1);
  }, 300_000);
});

// Failover onto an asynchronous standby that lost the last commits (issue 14).
// A primary and a hot standby (test/chaos/cluster.ts; own folders and ports,
// never the machine's server), two `agentd serve` replicas and a notifier on
// the multi-host URL. While tasks run, the standby stops receiving WAL (its
// primary_conninfo emptied, as a standby falling behind would), the tasks end
// and clients read their results and get their webhooks; then the primary is
// killed and the standby, which never saw those outcomes, promoted. Asserted:
// the runners, which survived, write each outcome again (fenced by lease and
// attempt), so every result a client saw reads the same afterwards (output,
// end time, attempt), at the same event sequence, and no event is delivered
// under two webhook-ids.
//
// Like failover.test.ts: runs in the real-Postgres run (DATABASE_URL set) or
// with AGENTD_CHAOS=1, skips in the embedded run.
import { randomBytes } from "node:crypto";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Task, TaskState } from "../../gen/agentd/v1/task_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { type AgentdProcess, clientsFor, spawnAgentd, spawnAgentdCommand } from "../support/agentd.js";
import { value } from "../support/json.js";
import { NOTIFIER_TEST_ENV, type Receiver, startReceiver } from "../webhooks/support.js";
import { clusterUnavailableReason, type PostgresCluster, startCluster, startStandby } from "./cluster.js";

const wanted = Boolean(process.env.DATABASE_URL) || process.env.AGENTD_CHAOS === "1";
const missing = clusterUnavailableReason();
const skipReason = !wanted
  ? "async failover suite: runs only with DATABASE_URL set (the real-Postgres run) or AGENTD_CHAOS=1"
  : missing && process.env.CI !== "true"
    ? `async failover suite skipped: ${missing}`
    : undefined;
if (skipReason) console.warn(skipReason);

let primary: PostgresCluster;
let standby: PostgresCluster;
const processes: AgentdProcess[] = [];
let receiver: Receiver | undefined;

beforeAll(async () => {
  if (skipReason) return;
  primary = await startCluster({ settings: { wal_level: "replica", max_wal_senders: "5" } });
  standby = await startStandby(primary);
}, 180_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  await receiver?.close();
  await standby?.destroy();
  await primary?.destroy();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
  everyMs = 200,
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

/** What a client reads as a task's result. */
const resultOf = (task: Task | undefined) =>
  task && {
    state: TaskState[task.state],
    output: JSON.stringify(task.output ?? null),
    attempt: task.attempt,
    end: task.endTime ? timestampMs(task.endTime) : undefined,
  };

describe.skipIf(skipReason !== undefined)("failover onto an asynchronous standby that lost the last outcomes", () => {
  it("re-applies the outcomes the runners still hold: no result a client saw changes, no webhook under a new id", async () => {
    const name = `async_failover_${randomBytes(4).toString("hex")}`;
    const primaryUrl = await primary.createDatabase(name);
    let key: string;
    {
      const db = await openDatabase({ url: primaryUrl, maxConnections: 1 });
      await runMigrations(db.sql);
      ({ key } = await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] }));
      await db.close();
    }
    const multiUrl = `postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/${name}?target_session_attrs=primary`;
    // Leases long enough that no lost outcome's lease expires (and is swept) before its runner is back.
    const env = { ...NOTIFIER_TEST_ENV, AGENTD_LEASE_MS: "30000", AGENTD_HEARTBEAT_MS: "500", AGENTD_POLL_MS: "200" };
    const replicas: AgentdProcess[] = [];
    for (let i = 0; i < 2; i++) {
      const p = await spawnAgentd({ databaseUrl: multiUrl, env });
      processes.push(p);
      replicas.push(p);
    }
    processes.push(
      await spawnAgentdCommand("notifier", { databaseUrl: multiUrl, ready: "agentd notifier is running", env }),
    );
    receiver = await startReceiver();
    const clients = replicas.map((r) => clientsFor(r.url, key));
    await clients[0]!.webhooks.rotateWebhookSecret({});
    const webhook = { url: receiver.url, eventTypes: ["task.succeeded"] };

    // Tasks that, once claimed, write nothing until their outcome (no step events to lose besides it).
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const input = value({
        steps: 0,
        hang: true,
        hang_ms: 12_000,
        output: { n: i, nonce: randomBytes(4).toString("hex") },
      });
      const { task } = await clients[i % 2]!.tasks.createTask({ agent: "simulate", input, webhook });
      ids.push(task!.id);
    }
    await until(
      "every task claimed",
      () => Promise.all(ids.map((taskId) => clients[0]!.tasks.getTask({ taskId }))),
      (all) => all.every((r) => r.task?.state === TaskState.RUNNING),
      30_000,
    );
    // The standby has the claims; then it stops receiving WAL: what follows exists on the primary only.
    const lsn = await primary.psql("SELECT pg_current_wal_lsn()");
    await until(
      "the standby replays the claims",
      () => standby.psql(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`),
      (v) => v === "t",
      30_000,
    );
    await standby.psql("ALTER SYSTEM SET primary_conninfo = ''");
    await standby.psql("SELECT pg_reload_conf()");
    await until(
      "the standby stops streaming",
      () => primary.psql("SELECT count(*) FROM pg_stat_replication"),
      (n) => n === "0",
      30_000,
    );
    // Cut off before any outcome (a loaded machine may be slow to get here): every outcome is on the primary only.
    const meanwhile = await Promise.all(ids.map((taskId) => clients[0]!.tasks.getTask({ taskId })));
    expect(meanwhile.map((r) => TaskState[r.task!.state])).toEqual(ids.map(() => "RUNNING"));

    // Clients read the results (acknowledged by the primary alone), and the webhooks go out.
    const seen = new Map<string, ReturnType<typeof resultOf>>();
    for (const taskId of ids) {
      const { task } = await clients[1]!.tasks.waitTask({ taskId, timeout: { seconds: 30n } }, { timeoutMs: 40_000 });
      expect(task?.state).toBe(TaskState.SUCCEEDED);
      seen.set(taskId, resultOf(task));
    }
    const succeededWebhooks = () => receiver!.received.filter((r) => JSON.parse(r.body).type === "task.succeeded");
    await receiver.until(
      () => new Set(succeededWebhooks().map((r) => JSON.parse(r.body).data.task.id)).size >= ids.length,
      30_000,
    );
    const sentBefore = succeededWebhooks().length;

    // The failover: the primary dies, the standby that never had those outcomes is promoted.
    await primary.stop("immediate");
    await standby.promote();
    const onPromoted = await standby.psql(`SELECT count(*) FROM pg_database WHERE datname = '${name}'`);
    expect(onPromoted).toBe("1");

    // Every result a client saw reads the same again, from both replicas.
    for (const client of clients) {
      const after = await until(
        "every task shows its result again",
        () => Promise.all(ids.map((taskId) => client.tasks.getTask({ taskId }, { timeoutMs: 5000 }))),
        (all) => all.every((r) => r.task?.state === TaskState.SUCCEEDED),
        60_000,
      );
      for (const r of after) expect(resultOf(r.task), r.task!.id).toEqual(seen.get(r.task!.id));
    }
    // They were lost and written again by the runners (not re-run): each runner says which.
    const reapplied = replicas.flatMap((p) =>
      p.logs.filter((l) => String(l.msg).startsWith("re-applied the outcome")).map((l) => String(l.taskId)),
    );
    expect(new Set(reapplied)).toEqual(new Set(ids));

    // Events: queued, running, succeeded, once each; the webhooks sent again (if any) repeat the same ids.
    for (const taskId of ids) {
      const { events } = await clients[0]!.tasks.listTaskEvents({ taskId, pageSize: 100 }, { timeoutMs: 10_000 });
      expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
      const states = events.flatMap((e) => (e.event.case === "stateChange" ? [TaskState[e.event.value.state]] : []));
      expect(states).toEqual(["QUEUED", "RUNNING", "SUCCEEDED"]);
    }
    await sleep(3000); // time for re-created deliveries to be sent
    const byEvent = new Map<string, Set<string>>();
    for (const r of receiver.received) {
      const body = JSON.parse(r.body) as { data: { task: { id: string }; sequence: string | number } };
      const k = `${body.data.task.id}/${body.data.sequence}`;
      byEvent.set(k, (byEvent.get(k) ?? new Set()).add(String(r.headers["webhook-id"])));
    }
    for (const [k, webhookIds] of byEvent) expect(webhookIds.size, `event ${k} under several webhook-ids`).toBe(1);
    expect(byEvent.size).toBe(ids.length);
    console.info(
      `async failover: ${reapplied.length} outcomes re-applied; task.succeeded webhooks ${sentBefore} before, ${succeededWebhooks().length} after`,
    );
  }, 300_000);
});

// Webhook benchmark: deliveries per second to a fast local receiver, and the
// time from the commit of a terminal task event to the receiver getting it
// (p50/p99), with one and with two notifier processes.
//
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/webhooks.ts
//     [--backlogs 5000,20000] [--rates 100,250,500] [--seconds 8] [--write]
//
// Needs real Postgres (a scratch database is created and dropped): notifier
// processes on embedded PGlite share its one session, which is what `agentd
// dev` is for, not what this measures. `--write` replaces the "Webhooks"
// section of BENCHMARKS.md with the results.
//
// Parts: this process creates tasks through the real task writer with the
// webhook outbox (so every terminal event commits its delivery in the same
// transaction); notifiers are `agentd notifier` child processes; the
// receiver is a child process answering 204 at once. Times are wall-clock
// (performance.timeOrigin + now()), comparable across processes on one host.
import { type ChildProcess, fork, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { openSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import type { TaskRow } from "../services/agent/model/task.js";
import { targetOf, webhookPayload } from "../services/agent/outbox/event-types.js";
import { createWebhookOutbox } from "../services/agent/outbox/outbox.js";
import { createTaskWriter } from "../services/agent/store/task-writer.js";
import { newTaskRow, requestFingerprint } from "../services/agent/tasks/new-task.js";
import { rotateSecret } from "../services/agent/webhooks/rotate-secret.js";
import { taskJson } from "../services/agent/wire/task-json.js";
import { openDatabase } from "../services/shared/db/database.js";
import { runMigrations } from "../services/shared/db/migrate.js";
import { createPostgresWakeupBus } from "../services/shared/wakeup/postgres-bus.js";
import { cpuSeconds, percentile } from "./support.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const wallNow = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------- receiver --

/** Child-process mode: a receiver that answers 204 and records (webhook-id, time). */
function runReceiver(): void {
  const ids: string[] = [];
  const times: number[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      ids.push(String(req.headers["webhook-id"]));
      times.push(wallNow());
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as AddressInfo).port }));
  process.on("message", (m: { cmd: string }) => {
    if (m.cmd === "count") process.send!({ count: ids.length });
    if (m.cmd === "take") {
      process.send!({ ids: ids.splice(0), times: times.splice(0) });
    }
  });
}

interface ReceiverHandle {
  url: string;
  pid: number;
  count(): Promise<number>;
  take(): Promise<{ ids: string[]; times: number[] }>;
  close(): void;
}

async function startReceiverProcess(): Promise<ReceiverHandle> {
  const child = fork(fileURLToPath(import.meta.url), ["--receiver"], {
    execArgv: ["--import", "tsx"],
    stdio: "inherit",
  });
  const port = await new Promise<number>((resolve) => child.once("message", (m: { port: number }) => resolve(m.port)));
  const ask = <T>(cmd: string) =>
    new Promise<T>((resolve) => {
      child.once("message", (m: T) => resolve(m));
      child.send({ cmd });
    });
  return {
    url: `http://127.0.0.1:${port}/hook`,
    pid: child.pid!,
    count: () => ask<{ count: number }>("count").then((m) => m.count),
    take: () => ask("take"),
    close: () => child.kill("SIGKILL"),
  };
}

// --------------------------------------------------------------- notifiers --

let nextMetricsPort = 19_190;
const logDir = flag("notifier-logs", "");

/** A notifier process; ready once its metrics listener answers. Its logs (info: one line per delivery) go to /dev/null, as to a log shipper. */
async function spawnNotifier(databaseUrl: string, env: Record<string, string>): Promise<ChildProcess> {
  const metricsPort = nextMetricsPort++;
  const child = spawn(process.execPath, [`${root}bin/agentd.js`, "notifier"], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      AGENTD_WEBHOOK_ALLOW_HTTP: "true",
      AGENTD_WEBHOOK_ALLOW_CIDRS: "127.0.0.0/8",
      AGENTD_LOG_LEVEL: "info",
      AGENTD_NOTIFIER_METRICS_PORT: String(metricsPort),
      ...env,
    },
    // --notifier-logs DIR keeps each notifier's JSON log in DIR/notifier-<port>.log.
    stdio: ["ignore", logDir ? openSync(`${logDir}/notifier-${metricsPort}.log`, "w") : "ignore", "inherit"],
  });
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error("notifier exited before it was ready");
    const ok = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return child;
    if (Date.now() > deadline) throw new Error("notifier not ready within 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ------------------------------------------------------------------ stats --

/** CPU used by groups of processes so far (0 for one that has ended). */
function cpuSnapshot(groups: Record<string, number[]>): Map<number, number> {
  const seconds = (pid: number) => {
    try {
      return cpuSeconds(pid);
    } catch {
      return 0;
    }
  };
  return new Map(
    Object.values(groups)
      .flat()
      .map((pid) => [pid, seconds(pid)]),
  );
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

// ------------------------------------------------------------------- main --

interface LatencyResult {
  rate: number;
  achievedRate: number;
  count: number;
  p50: number;
  p99: number;
  max: number;
}

interface ThroughputResult {
  backlog: number;
  perSecond: number;
  drained: number;
  /** CPU milliseconds per delivery during the run, by process group. */
  cpuMsPerDelivery: Record<string, number>;
  /** Postgres commits (all transactions on the database) per delivery. */
  commitsPerDelivery: number;
}

interface RunResult {
  notifiers: number;
  throughput: ThroughputResult[];
  latency: LatencyResult[];
}

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) throw new Error("set DATABASE_URL to a Postgres server (a scratch database is created and dropped)");
  const backlogs = flag("backlogs", "5000,20000").split(",").map(Number);
  const rates = flag("rates", "100,250,500").split(",").map(Number);
  const seconds = Number(flag("seconds", "10"));
  // Extra notifier settings, e.g. --env AGENTD_WEBHOOK_ENDPOINT_CONCURRENCY=32,AGENTD_LOG_LEVEL=warn
  const notifierEnv: Record<string, string> = Object.fromEntries(
    flag("env", "")
      .split(",")
      .filter(Boolean)
      .map((kv) => kv.split("=") as [string, string]),
  );

  const loadAtStart = loadavg()[0] ?? 0;
  const name = `agentd_bench_${randomBytes(4).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin`CREATE DATABASE ${admin(name)}`;
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();

  const db = await openDatabase({ url: databaseUrl, maxConnections: 20 });
  const receiver = await startReceiverProcess();
  const children: ChildProcess[] = [];
  const results: RunResult[] = [];
  try {
    await runMigrations(db.sql);
    await db.sql`INSERT INTO tenants (tenant_id) VALUES ('bench')`;
    await rotateSecret(db.sql, "bench", null, 0);
    const bus = await createPostgresWakeupBus({ url: databaseUrl });
    const outbox = createWebhookOutbox({ bus });
    const writer = createTaskWriter({ sql: db.sql, bus, sink: outbox });
    const webhook = { url: receiver.url, eventTypes: ["task.succeeded"] };

    /** A task through the real writer: inserted QUEUED, then SUCCEEDED (the outbox write). Resolves at commit. */
    async function finishOne(): Promise<{ taskId: string; committedAt: number }> {
      const request = {
        agent: "bench",
        input: { text: "x".repeat(200) },
        requestId: null,
        labels: {},
        timeoutMs: 60_000,
        maxAttempts: 1,
        webhook,
      };
      const row = newTaskRow("bench", "1.0.0", request, requestFingerprint("task", request), new Date());
      await writer.insert(row);
      await writer.change({ tenantId: "bench", taskId: row.task_id }, () => ({
        patch: { state: "SUCCEEDED", output: { summary: "y".repeat(200) }, end_time: new Date() },
      }));
      return { taskId: row.task_id, committedAt: wallNow() };
    }

    async function waitForReceipts(total: number, timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while ((await receiver.count()) < total) {
        if (Date.now() > deadline) throw new Error(`only ${await receiver.count()} of ${total} deliveries arrived`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }

    /** Once every outcome is written, removes the deliveries so the next run starts from an empty, vacuumed table. */
    async function clearDeliveries(): Promise<void> {
      const deadline = Date.now() + 60_000;
      while (
        (await db.sql`SELECT 1 FROM webhook_deliveries WHERE tenant_id = 'bench' AND state <> 'SUCCEEDED' LIMIT 1`)
          .length > 0
      ) {
        if (Date.now() > deadline) throw new Error("deliveries still not recorded as SUCCEEDED after 60 s");
        await new Promise((r) => setTimeout(r, 50));
      }
      await db.sql`DELETE FROM webhook_attempts WHERE tenant_id = 'bench'`;
      await db.sql`DELETE FROM webhook_deliveries WHERE tenant_id = 'bench'`;
      await db.sql`VACUUM webhook_deliveries`;
    }

    /** Releases `backlog` due deliveries at once and times their arrival; CPU and commits per delivery meanwhile. */
    async function measureThroughput(backlog: number, notifiers: number): Promise<ThroughputResult> {
      const sample = newTaskRow(
        "bench",
        "1.0.0",
        {
          agent: "bench",
          input: { text: "x".repeat(200) },
          requestId: null,
          labels: {},
          timeoutMs: 60_000,
          maxAttempts: 1,
          webhook,
        },
        "",
        new Date(),
      );
      const payload = webhookPayload(
        "task.succeeded",
        new Date(),
        taskJson({ ...sample, state: "SUCCEEDED", output: { summary: "y".repeat(200) } } as TaskRow),
        3,
      );
      await db.sql`
        INSERT INTO webhook_deliveries (tenant_id, delivery_id, task_id, sequence, event_type, url, target, payload, next_attempt_at)
        SELECT 'bench', agentd_uuid_v7(), gen_random_uuid(), 3, 'task.succeeded', ${receiver.url}, ${targetOf(receiver.url)},
          ${db.sql.json(payload)}, now() + interval '1 day'
        FROM generate_series(1, ${backlog})
      `;
      await receiver.take();
      const groups = async () => ({
        notifier: children.map((c) => c.pid!),
        postgres: (
          await db.sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`
        ).map((r) => r.pid),
        receiver: [receiver.pid],
      });
      const commits = async () =>
        (
          await db.sql<
            { n: number }[]
          >`SELECT xact_commit::int AS n FROM pg_stat_database WHERE datname = current_database()`
        )[0]!.n;
      const commitsBefore = await commits();
      const before = cpuSnapshot(await groups());
      const started = wallNow();
      await db.sql`UPDATE webhook_deliveries SET next_attempt_at = now() WHERE tenant_id = 'bench' AND state = 'PENDING'`;
      bus.publish("delivery", "bench");
      await waitForReceipts(backlog, 300_000);
      const { times } = await receiver.take();
      const drained = (Math.max(...times) - started) / 1000;
      const finalGroups = await groups();
      const after = cpuSnapshot(finalGroups);
      // Statistics reach pg_stat_database with a delay of up to a second.
      await new Promise((r) => setTimeout(r, 1500));
      const commitsPerDelivery = ((await commits()) - commitsBefore) / backlog;
      const cpuMsPerDelivery = Object.fromEntries(
        Object.entries(finalGroups).map(([group, pids]) => [
          group,
          (pids.reduce((sum, pid) => sum + (after.get(pid) ?? 0) - (before.get(pid) ?? 0), 0) * 1000) / backlog,
        ]),
      );
      await clearDeliveries();
      const result = { backlog, perSecond: backlog / drained, drained, cpuMsPerDelivery, commitsPerDelivery };
      process.stderr.write(
        `${notifiers} notifier(s): ${backlog} deliveries in ${drained.toFixed(2)} s = ${result.perSecond.toFixed(0)}/s; ` +
          `CPU ms per delivery ${JSON.stringify(cpuMsPerDelivery)}; commits per delivery ${commitsPerDelivery.toFixed(3)}\n`,
      );
      return result;
    }

    for (const count of [1, 2]) {
      for (let i = 0; i < count; i++) children.push(await spawnNotifier(databaseUrl, notifierEnv));

      // Throughput: backlogs of due deliveries, each released at once.
      const run: RunResult = { notifiers: count, throughput: [], latency: [] };
      for (const backlog of backlogs) run.throughput.push(await measureThroughput(backlog, count));
      // Latency: terminal task events at a steady rate, commit → receipt.
      for (const rate of rates) {
        const committed = new Map<string, number>();
        const pending: Promise<void>[] = [];
        const begin = Date.now();
        let made = 0;
        while (Date.now() - begin < seconds * 1000) {
          const due = Math.floor(((Date.now() - begin) / 1000) * rate);
          for (; made < due; made++) pending.push(finishOne().then((t) => void committed.set(t.taskId, t.committedAt)));
          await new Promise((r) => setTimeout(r, 5));
        }
        await Promise.all(pending);
        const achievedRate = made / ((Date.now() - begin) / 1000);
        await waitForReceipts(made, 120_000);
        const { ids, times } = await receiver.take();
        const taskOf = new Map(
          (
            await db.sql<{ delivery_id: string; task_id: string }[]>`
            SELECT delivery_id, task_id FROM webhook_deliveries WHERE tenant_id = 'bench' AND delivery_id = ANY(${ids}::uuid[])
          `
          ).map((r) => [r.delivery_id, r.task_id]),
        );
        const latencies = ids.map((id, i) => times[i]! - committed.get(taskOf.get(id)!)!).sort((a, b) => a - b);
        const result = {
          rate,
          achievedRate,
          count: latencies.length,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          max: latencies.at(-1)!,
        };
        run.latency.push(result);
        process.stderr.write(
          `  ${rate}/s asked, ${achievedRate.toFixed(0)}/s made: p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, max ${result.max.toFixed(1)} ms\n`,
        );
      }
      results.push(run);
      await clearDeliveries();
      for (const c of children.splice(0)) c.kill("SIGKILL");
    }
    await bus.close();
  } finally {
    for (const c of children) c.kill("SIGKILL");
    receiver.close();
    await db.close();
    await admin`DROP DATABASE IF EXISTS ${admin(name)} WITH (FORCE)`;
    await admin.end();
  }

  const section = report(results, { seconds, loadAtStart });
  process.stdout.write(`${section}\n`);
  if (process.argv.includes("--write")) await writeSection(section);
}

function report(results: RunResult[], opts: { seconds: number; loadAtStart: number }): string {
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const cpuTotal = (t: ThroughputResult) => Object.values(t.cpuMsPerDelivery).reduce((a, b) => a + b, 0);
  const single = results.find((r) => r.notifiers === 1)?.throughput ?? [];
  const [low, high] = [Math.min(...single.map(cpuTotal)), Math.max(...single.map(cpuTotal))];
  const ceiling = (ms: number) => Math.round((cpus().length * 1000) / ms);
  const lines = [
    "## Webhooks",
    "",
    `\`bench/webhooks.ts\`, ${new Date().toISOString().slice(0, 10)}: ${cpus().length} × ${cpu}, Node ${process.version}, ` +
      "Postgres on the same host; receiver, notifiers and the task-writing process all on these cores. " +
      "Notifiers with default settings (64 in flight per process, 8 per destination, info logs on). " +
      `Load average when it started: ${round(opts.loadAtStart, 2)}.`,
    "",
    "Throughput: a backlog of due deliveries to one fast local receiver (204 at once), released at once.",
    "",
    "| notifier processes | backlog | deliveries/s | drained in | CPU per delivery: notifiers | Postgres backends | receiver | Postgres commits per delivery |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...results.flatMap((r) =>
      r.throughput.map(
        (t) =>
          `| ${r.notifiers} | ${t.backlog} | ${Math.round(t.perSecond)} | ${round(t.drained, 2)} s | ${round(t.cpuMsPerDelivery.notifier ?? 0, 3)} ms | ` +
          `${round(t.cpuMsPerDelivery.postgres ?? 0, 3)} ms | ${round(t.cpuMsPerDelivery.receiver ?? 0, 3)} ms | ${round(t.commitsPerDelivery, 2)} |`,
      ),
    ),
    "",
    `Latency: terminal task events written through the task writer at a steady rate for ${opts.seconds} s; ` +
      "time from the writer's commit to the receiver having the request.",
    "",
    "| notifier processes | events/s | p50 | p99 | max |",
    "| --- | --- | --- | --- | --- |",
    ...results.flatMap((r) =>
      r.latency.map(
        (l) =>
          `| ${r.notifiers} | ${Math.round(l.achievedRate)} | ${round(l.p50)} ms | ${round(l.p99)} ms | ${round(l.max)} ms |`,
      ),
    ),
    "",
    `What limits it: CPU. A delivery costs ${round(low, 2)}–${round(high, 2)} ms of CPU in all (notifier, Postgres backends, ` +
      `receiver; the WAL writer not counted), so ${cpus().length} cores top out near ${ceiling(high)}–${ceiling(low)}/s with nothing else running. ` +
      "The notifier's share is the largest (HTTP client, signing, JSON, its database client, one info log line per delivery). " +
      "Postgres does one claim update and one outcome update per delivery plus the attempt row, in batches (see commits per delivery). " +
      "Claims and outcomes address rows by ctid, so their cost does not depend on the planner's view of this fast-changing table " +
      "(joined back by key, they were planned as hash joins over every pending row, which doubled Postgres' cost on a 20,000 backlog). " +
      "A second notifier process brings no cores on one host, only some contention (both scan the head of the same queue under " +
      "SKIP LOCKED); it adds throughput where notifiers run on machines of their own. " +
      "In the latency runs the task-writing bench process (two transactions per task) shares the same cores; p99 stayed at or under " +
      `100 ms up to ${sustainable(results)}, and beyond that writer, Postgres and notifier saturate the cores and queueing shows in p99.`,
  ];
  return lines.join("\n");
}

/** The highest steady rate with p99 ≤ 100 ms, per number of notifiers, as text. */
function sustainable(results: RunResult[]): string {
  return results
    .map((r) => {
      const ok = r.latency.filter((l) => l.p99 <= 100).map((l) => Math.round(l.achievedRate));
      return `${ok.length > 0 ? Math.max(...ok) : "none of the"} events/s with ${r.notifiers} notifier${r.notifiers > 1 ? "s" : ""}`;
    })
    .join(" and ");
}

/** Replaces the "## Webhooks" section of BENCHMARKS.md (up to the next "## "), or appends it. */
async function writeSection(section: string): Promise<void> {
  const file = `${root}BENCHMARKS.md`;
  const text = await readFile(file, "utf8").catch(() => "# Benchmarks\n");
  const start = text.indexOf("## Webhooks");
  let next: string;
  if (start < 0) next = `${text.trimEnd()}\n\n${section}\n`;
  else {
    const end = text.indexOf("\n## ", start + 1);
    next = `${text.slice(0, start)}${section}\n${end < 0 ? "" : text.slice(end)}`;
  }
  await writeFile(file, next);
}

if (process.argv.includes("--receiver")) runReceiver();
else
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });

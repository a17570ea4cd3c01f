// agentd side by side with graphile-worker (issue 13, "Benchmarks"), on the same
// Postgres, interleaved A, B, A, B… for `--rounds` rounds; median and range.
// - End to end: N no-op tasks, `inFlight` creates at a time, until all are done.
//   agentd: CreateTask (gRPC) of `simulate` with no steps, run by `agentd serve`'s
//   runner (which also writes the event log; no webhook endpoints, so no outbox rows).
//   graphile-worker: addJob through WorkerUtils, run by `run()` with the same concurrency.
// - Accept rate: CreateTask to a server whose runner is off (group commit on, and off with
//   AGENTD_GROUP_COMMIT_ROWS=1), addJob with no worker, and a single-row INSERT through
//   postgres.js, `inFlight` at a time.
// - Clients: CreateTask goes through @grpc/grpc-js's client, the reference gRPC client, as a
//   Node backend would call agentd; "accept CreateTask, connect-node client" is the same arm
//   through connect-node's gRPC transport, which costs the caller about twice the CPU per call.
// - Warm-up: every process starts fresh each round, so each first does `--warm` operations
//   (default 20000) unmeasured. A fresh agentd server's CPU per call falls for its first 12,000 or
//   so calls, to under half of its first thousands' (`npm run bench -- warmup` shows the curve);
//   20,000 measures the steady state a long-running server is in. The same holds for both peers:
//   the graphile-worker process runs `--warm` jobs first, and addJob and INSERT warm in this process.
// - `--baseline DIR` (another checkout with node_modules, e.g. /work/main) adds "e2e agentd,
//   baseline" and "accept CreateTask, baseline": the same rows served from DIR, interleaved with
//   this tree's.
// - `--access-log-off` adds "accept CreateTask, access log off" (AGENTD_ACCESS_LOG_LEVEL=silent).
// - Statistics: after each end-to-end warm-up the database is ANALYZEd, as autovacuum does within
//   a minute of a live database's first rows. Without it, plans that the fresh processes cached
//   while the tables were empty stay: the runners' completion batch then scans every task (its
//   cost grows with the table) for the whole run, which only the first minute of a new database sees.
// CPU per operation, from /proc: "server" is the serving process's (agentd serve, the
// graphile-worker process), "caller" this process's (the gRPC client, or addJob and INSERT,
// which run in the caller). Postgres' own CPU is not counted.
// Postgres only: `npm run bench -- peers [--quick] [--rounds R] [--tasks N] [--warm W] [--baseline DIR] [--access-log-off]`.
import { type ChildProcess, spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { createInterface } from "node:readline";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { runMigrations as graphileMigrate, Logger, makeWorkerUtils, run } from "graphile-worker";
import postgres from "postgres";
import { TaskService } from "../gen/agentd/v1/task_service_pb.js";
import { createApiKey } from "../services/shared/auth/api-keys.js";
import { SCOPES } from "../services/shared/auth/scopes.js";
import { runMigrations } from "../services/shared/db/migrate.js";
import { createPostgresDatabase, databaseUrl, dropPostgresDatabase } from "../test/support/postgres-admin.js";
import { closedLoop, cpuSeconds, grpcJsNoopCreator, numberArg, spawnAgentdServe } from "./support.js";

const root = new URL("..", import.meta.url).pathname;
const silent = new Logger(() => () => {});
const quick = process.argv.includes("--quick");
const ROUNDS = numberArg("rounds", 3);
const N = numberArg("tasks", quick ? 1000 : 5000);
const WARM = Math.max(1, numberArg("warm", 20000));
const ACCESS_LOG_OFF = process.argv.includes("--access-log-off");
const baselineAt = process.argv.indexOf("--baseline");
const BASELINE = baselineAt > 0 ? process.argv[baselineAt + 1] : undefined;
const IN_FLIGHT = 64;
const CONCURRENCY = 16;

// ---- the graphile-worker process: `peers.ts --graphile-worker <url>` ----
if (process.argv[2] === "--graphile-worker") {
  const runner = await run({
    connectionString: process.argv[3]!,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    pollInterval: 2000,
    logger: silent,
    taskList: { noop: async () => {} },
  });
  console.log("ready");
  process.on("SIGTERM", () => void runner.stop().then(() => process.exit(0)));
  await new Promise(() => {});
}

function spawnReady(
  args: string[],
  env: Record<string, string>,
  ready: (line: string) => boolean,
): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => ready(line) && resolve(child));
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited (${code})`)));
  });
}
const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });

interface Sample {
  perSecond: number;
  /** The serving process's CPU per operation; undefined where the caller does the work. */
  serverCpuMs: number | undefined;
  callerCpuMs: number;
  load: number;
}

async function measure(n: number, server: ChildProcess | undefined, work: () => Promise<void>): Promise<Sample> {
  const server0 = server ? cpuSeconds(server.pid!) : 0;
  const caller0 = cpuSeconds("self");
  const t0 = performance.now();
  await work();
  const seconds = (performance.now() - t0) / 1000;
  return {
    perSecond: n / seconds,
    serverCpuMs: server ? ((cpuSeconds(server.pid!) - server0) * 1000) / n : undefined,
    callerCpuMs: ((cpuSeconds("self") - caller0) * 1000) / n,
    load: loadavg()[0]!,
  };
}

async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 20));
}

async function main() {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    console.log("### Peers\n\nSkipped: needs DATABASE_URL (graphile-worker runs on Postgres only).\n");
    return;
  }
  const name = `agentd_peers_${Date.now().toString(36)}`;
  await createPostgresDatabase(adminUrl, name, "template0");
  const url = databaseUrl(adminUrl, name);
  const sql = postgres(url, { max: 10, onnotice: () => {} });
  await runMigrations(sql as never);
  await graphileMigrate({ connectionString: url, logger: silent });
  await sql`CREATE TABLE bench_rows (id bigserial PRIMARY KEY, payload jsonb NOT NULL, created timestamptz NOT NULL DEFAULT now())`;
  const key = (await createApiKey(sql as never, { tenantId: "bench", scopes: [...SCOPES] })).key;
  const utils = await makeWorkerUtils({ connectionString: url, logger: silent });

  const agentdEnv = (concurrency: number) => ({
    DATABASE_URL: url,
    AGENTD_LOG_LEVEL: "warn",
    AGENTD_RUNNER_CONCURRENCY: String(concurrency),
  });
  const urlOf = async (concurrency: number, env: Record<string, string> = {}, checkout = root) => {
    const { child, url: serverUrl } = await spawnAgentdServe(
      { ...agentdEnv(concurrency), AGENTD_LOG_LEVEL: "info", ...env },
      { checkout },
    );
    return { child, serverUrl };
  };
  const noop = fromJson(ValueSchema, { steps: 0 });
  const headers = { authorization: `Bearer ${key}` };
  /** A CreateTask caller of the server at `baseUrl`, through grpc-js (the default) or connect-node. */
  const creatorFor = (baseUrl: string, client: "grpc-js" | "connect-node" = "grpc-js") => {
    if (client === "grpc-js") return grpcJsNoopCreator(baseUrl, key);
    const tasks = createClient(TaskService, createGrpcTransport({ baseUrl }));
    return { create: () => tasks.createTask({ agent: "simulate", input: noop }, { headers }), close: () => {} };
  };
  const unfinishedTasks = async () =>
    (await sql`SELECT count(*)::int AS n FROM tasks WHERE state <> 'SUCCEEDED'`)[0]!.n;
  const unfinishedJobs = async () => (await sql`SELECT count(*)::int AS n FROM graphile_worker._private_jobs`)[0]!.n;

  const results: Record<string, Sample[]> = {};
  const note = (label: string, s: Sample) => {
    results[label] ??= [];
    results[label].push(s);
  };

  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`round ${round}/${ROUNDS}`);
    // End to end, A then B; each side first runs WARM tasks to completion, unmeasured.
    const e2eArms: [label: string, checkout: string][] = [["e2e agentd", root]];
    if (BASELINE) e2eArms.push(["e2e agentd, baseline", BASELINE]);
    for (const [label, checkout] of e2eArms) {
      const { child, serverUrl } = await urlOf(CONCURRENCY, {}, checkout);
      const { create, close } = creatorFor(serverUrl);
      await closedLoop(WARM, IN_FLIGHT, create);
      await until(async () => (await unfinishedTasks()) === 0);
      await sql`ANALYZE`; // see "Statistics" at the top
      note(
        label,
        await measure(N, child, async () => {
          await closedLoop(N, IN_FLIGHT, create);
          await until(async () => (await unfinishedTasks()) === 0);
        }),
      );
      close();
      await stop(child);
    }
    {
      const child = await spawnReady(
        [`--import`, "tsx", `${root}bench/peers.ts`, "--graphile-worker", url],
        {},
        (l) => l === "ready",
      );
      await closedLoop(WARM, IN_FLIGHT, (i) => utils.addJob("noop", { i }));
      await until(async () => (await unfinishedJobs()) === 0);
      await sql`ANALYZE`;
      note(
        "e2e graphile-worker",
        await measure(N, child, async () => {
          await closedLoop(N, IN_FLIGHT, (i) => utils.addJob("noop", { i }));
          await until(async () => (await unfinishedJobs()) === 0);
        }),
      );
      await stop(child);
    }
    // Accept rates: CreateTask (runner off) with group commit on (the default) and off, addJob (no worker), INSERT.
    const acceptArms: [label: string, env: Record<string, string>, checkout: string, client?: "connect-node"][] = [
      ["accept CreateTask", {}, root],
    ];
    if (BASELINE) acceptArms.push(["accept CreateTask, baseline", {}, BASELINE]);
    acceptArms.push(["accept CreateTask, connect-node client", {}, root, "connect-node"]);
    acceptArms.push(["accept CreateTask, group commit off", { AGENTD_GROUP_COMMIT_ROWS: "1" }, root]);
    if (ACCESS_LOG_OFF)
      acceptArms.push(["accept CreateTask, access log off", { AGENTD_ACCESS_LOG_LEVEL: "silent" }, root]);
    for (const [label, env, checkout, client] of acceptArms) {
      const { child, serverUrl } = await urlOf(0, env, checkout);
      const { create, close } = creatorFor(serverUrl, client);
      await closedLoop(WARM, IN_FLIGHT, create); // unmeasured: see the note at the top
      note(label, await measure(N, child, () => closedLoop(N, IN_FLIGHT, create)));
      close();
      await stop(child);
      await sql`DELETE FROM task_events`;
      await sql`DELETE FROM tasks`;
    }
    const addJob = (i: number) => utils.addJob("noop", { i });
    const insert = (i: number) => sql`INSERT INTO bench_rows (payload) VALUES (${sql.json({ i })})`;
    if (round === 1) {
      await closedLoop(WARM, IN_FLIGHT, addJob);
      await closedLoop(WARM, IN_FLIGHT, insert);
    }
    note("accept addJob", await measure(N, undefined, () => closedLoop(N, IN_FLIGHT, addJob)));
    await sql`DELETE FROM graphile_worker._private_jobs`;
    note("accept INSERT (postgres.js)", await measure(N, undefined, () => closedLoop(N, IN_FLIGHT, insert)));
  }
  await utils.release();
  await sql.end();
  await dropPostgresDatabase(adminUrl, name);

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
  console.log(`### Peers — agentd vs graphile-worker, Postgres\n`);
  console.log(
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}; ${ROUNDS} interleaved rounds, ` +
      `${N} operations per row, ${IN_FLIGHT} in flight, runner/worker concurrency ${CONCURRENCY}; ` +
      `every process warmed with ${WARM} operations first; CreateTask through the grpc-js client unless the row says otherwise${BASELINE ? `; baseline ${BASELINE}` : ""}.\n`,
  );
  console.log(
    "| load | per second (median) | range | server CPU ms per op (median) | caller CPU ms per op (median) | load average |\n| --- | ---: | ---: | ---: | ---: | ---: |",
  );
  const server = (samples: Sample[]) =>
    samples[0]!.serverCpuMs === undefined ? "— (in the caller)" : median(samples.map((s) => s.serverCpuMs!)).toFixed(3);
  for (const [label, samples] of Object.entries(results)) {
    const rates = samples.map((s) => s.perSecond);
    console.log(
      `| ${label} | ${median(rates).toFixed(0)} | ${range(rates)} | ${server(samples)} | ${median(samples.map((s) => s.callerCpuMs)).toFixed(3)} | ${samples.map((s) => s.load.toFixed(1)).join(", ")} |`,
    );
  }
  const m = (label: string) => median(results[label]!.map((s) => s.perSecond));
  const ratios = (a: string, b: string) => {
    const xs = results[a]!.map((s, i) => s.perSecond / results[b]![i]!.perSecond);
    return `**${median(xs).toFixed(2)}×** (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} by round)`;
  };
  console.log("");
  console.log(`- End to end, agentd / graphile-worker: ${ratios("e2e agentd", "e2e graphile-worker")} (aim ≥ 1.5×).`);
  console.log(`- Accept, CreateTask / addJob: ${ratios("accept CreateTask", "accept addJob")} (aim ≥ 2×).`);
  console.log(
    `- Accept through connect-node's gRPC client instead, CreateTask / addJob: ${ratios("accept CreateTask, connect-node client", "accept addJob")}.`,
  );
  const acceptCpu = results["accept CreateTask"]!.map((s) => s.serverCpuMs!);
  console.log(
    `- Server CPU per accepted task: **${median(acceptCpu).toFixed(3)} ms** (${Math.min(...acceptCpu).toFixed(3)}–${Math.max(...acceptCpu).toFixed(3)} by round) (aim ≤ 0.3 ms).`,
  );
  console.log(
    `- Accept, group commit on / off (AGENTD_GROUP_COMMIT_ROWS=1): ${ratios("accept CreateTask", "accept CreateTask, group commit off")}.`,
  );
  if (BASELINE) {
    console.log(`- End to end, this tree / baseline: ${ratios("e2e agentd", "e2e agentd, baseline")}.`);
    const cpu = (label: string) => results[label]!.map((s) => s.serverCpuMs!);
    const cpuRatios = cpu("accept CreateTask").map((c, i) => c / cpu("accept CreateTask, baseline")[i]!);
    console.log(
      `- Accept, this tree / baseline: rate ${ratios("accept CreateTask", "accept CreateTask, baseline")}; server CPU per accepted task ` +
        `**${median(cpuRatios).toFixed(2)}×** (${Math.min(...cpuRatios).toFixed(2)}–${Math.max(...cpuRatios).toFixed(2)} by round).`,
    );
  }
  if (ACCESS_LOG_OFF) {
    const cpu = (label: string) => results[label]!.map((s) => s.serverCpuMs!);
    const off = cpu("accept CreateTask, access log off");
    const diffs = cpu("accept CreateTask").map((c, i) => c - off[i]!);
    console.log(
      `- Access log at info (the default) minus off, server CPU per accepted task: **${median(diffs).toFixed(3)} ms** ` +
        `(${Math.min(...diffs).toFixed(3)} to ${Math.max(...diffs).toFixed(3)} by round).`,
    );
  }
  console.log(
    `- Accept, CreateTask / INSERT: ${ratios("accept CreateTask", "accept INSERT (postgres.js)")} (aim ≥ 0.3×); medians ${m("accept CreateTask").toFixed(0)} vs ${m("accept INSERT (postgres.js)").toFixed(0)}/s.`,
  );
  console.log("");
}

await main();

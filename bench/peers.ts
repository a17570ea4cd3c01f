// agentd side by side with graphile-worker (issue 13, "Benchmarks"), on the same
// Postgres, interleaved A, B, A, B… for `--rounds` rounds; median and range.
// - End to end: N no-op tasks, `inFlight` creates at a time, until all are done.
//   agentd: CreateTask (gRPC) of `simulate` with no steps, run by `agentd serve`'s
//   runner (which also writes the event log; no webhook endpoints, so no outbox rows).
//   graphile-worker: addJob through WorkerUtils, run by `run()` with the same concurrency.
// - Accept rate: CreateTask to a server whose runner is off (group commit on, and off with
//   AGENTD_GROUP_COMMIT_ROWS=1), addJob with no worker, and a single-row INSERT through
//   postgres.js, `inFlight` at a time. Each server is fresh, so it first takes `--warm` calls
//   (default 1000) unmeasured: its first thousand calls cost about twice the CPU of later ones
//   (lazy compilation, JIT), while addJob and INSERT run warm in this process after round 1.
// - `--baseline DIR` (another checkout with node_modules, e.g. /work/main) adds "accept
//   CreateTask, baseline": the same arm served from DIR, interleaved with this tree's.
// - `--access-log-off` adds "accept CreateTask, access log off" (AGENTD_ACCESS_LOG_LEVEL=silent).
// CPU per operation is the serving process's (agentd serve, the graphile-worker
// process) or, for addJob and INSERT, this process's (they run in the caller), from
// /proc; Postgres' own CPU is not counted. Postgres only: `npm run bench -- peers [--quick] [--rounds R] [--tasks N] [--warm W] [--baseline DIR] [--access-log-off]`.
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
import { closedLoop, cpuSeconds, spawnAgentdServe } from "./support.js";

const root = new URL("..", import.meta.url).pathname;
const silent = new Logger(() => () => {});
const quick = process.argv.includes("--quick");
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const ROUNDS = arg("rounds", 3);
const N = arg("tasks", quick ? 1000 : 5000);
const WARM = arg("warm", 1000);
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
  cpuMsPerOp: number;
  load: number;
}

async function measure(n: number, cpuOf: () => number, work: () => Promise<void>): Promise<Sample> {
  const cpu0 = cpuOf();
  const t0 = performance.now();
  await work();
  const seconds = (performance.now() - t0) / 1000;
  return { perSecond: n / seconds, cpuMsPerOp: ((cpuOf() - cpu0) * 1000) / n, load: loadavg()[0]! };
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
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
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
  const clientFor = (baseUrl: string) => createClient(TaskService, createGrpcTransport({ baseUrl }));

  const results: Record<string, Sample[]> = {};
  const note = (label: string, s: Sample) => {
    results[label] ??= [];
    results[label].push(s);
  };

  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`round ${round}/${ROUNDS}`);
    // End to end, A then B.
    {
      const { child, serverUrl } = await urlOf(CONCURRENCY);
      const client = clientFor(serverUrl);
      await client.createTask({ agent: "simulate", input: noop }, { headers }); // warm
      await until(async () => (await sql`SELECT count(*)::int AS n FROM tasks WHERE state <> 'SUCCEEDED'`)[0]!.n === 0);
      note(
        "e2e agentd",
        await measure(
          N,
          () => cpuSeconds(child.pid!),
          async () => {
            await closedLoop(N, IN_FLIGHT, () => client.createTask({ agent: "simulate", input: noop }, { headers }));
            await until(
              async () => (await sql`SELECT count(*)::int AS n FROM tasks WHERE state <> 'SUCCEEDED'`)[0]!.n === 0,
            );
          },
        ),
      );
      await stop(child);
    }
    {
      const child = await spawnReady(
        [`--import`, "tsx", `${root}bench/peers.ts`, "--graphile-worker", url],
        {},
        (l) => l === "ready",
      );
      const remaining = async () => (await sql`SELECT count(*)::int AS n FROM graphile_worker._private_jobs`)[0]!.n;
      note(
        "e2e graphile-worker",
        await measure(
          N,
          () => cpuSeconds(child.pid!),
          async () => {
            await closedLoop(N, IN_FLIGHT, (i) => utils.addJob("noop", { i }));
            await until(async () => (await remaining()) === 0);
          },
        ),
      );
      await stop(child);
    }
    // Accept rates: CreateTask (runner off) with group commit on (the default) and off, addJob (no worker), INSERT.
    const acceptArms: [label: string, env: Record<string, string>, checkout: string][] = [
      ["accept CreateTask", {}, root],
    ];
    if (BASELINE) acceptArms.push(["accept CreateTask, baseline", {}, BASELINE]);
    acceptArms.push(["accept CreateTask, group commit off", { AGENTD_GROUP_COMMIT_ROWS: "1" }, root]);
    if (ACCESS_LOG_OFF)
      acceptArms.push(["accept CreateTask, access log off", { AGENTD_ACCESS_LOG_LEVEL: "silent" }, root]);
    for (const [label, env, checkout] of acceptArms) {
      const { child, serverUrl } = await urlOf(0, env, checkout);
      const client = clientFor(serverUrl);
      // Warm, unmeasured: see the note at the top.
      await closedLoop(Math.max(1, WARM), IN_FLIGHT, () =>
        client.createTask({ agent: "simulate", input: noop }, { headers }),
      );
      note(
        label,
        await measure(
          N,
          () => cpuSeconds(child.pid!),
          () => closedLoop(N, IN_FLIGHT, () => client.createTask({ agent: "simulate", input: noop }, { headers })),
        ),
      );
      await stop(child);
      await sql`DELETE FROM task_events`;
      await sql`DELETE FROM tasks`;
    }
    note(
      "accept addJob",
      await measure(
        N,
        () => cpuSeconds("self"),
        () => closedLoop(N, IN_FLIGHT, (i) => utils.addJob("noop", { i })),
      ),
    );
    await sql`DELETE FROM graphile_worker._private_jobs`;
    note(
      "accept INSERT (postgres.js)",
      await measure(
        N,
        () => cpuSeconds("self"),
        () => closedLoop(N, IN_FLIGHT, (i) => sql`INSERT INTO bench_rows (payload) VALUES (${sql.json({ i })})`),
      ),
    );
  }
  await utils.release();
  await sql.end();
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
  console.log(`### Peers — agentd vs graphile-worker, Postgres\n`);
  console.log(
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}; ${ROUNDS} interleaved rounds, ` +
      `${N} operations per row, ${IN_FLIGHT} in flight, runner/worker concurrency ${CONCURRENCY}; ` +
      `each CreateTask server warmed with ${WARM} calls first${BASELINE ? `; baseline ${BASELINE}` : ""}.\n`,
  );
  console.log(
    "| load | per second (median) | range | CPU ms per op (median) | load average |\n| --- | ---: | ---: | ---: | ---: |",
  );
  for (const [label, samples] of Object.entries(results)) {
    const rates = samples.map((s) => s.perSecond);
    console.log(
      `| ${label} | ${median(rates).toFixed(0)} | ${range(rates)} | ${median(samples.map((s) => s.cpuMsPerOp)).toFixed(3)} | ${samples.map((s) => s.load.toFixed(1)).join(", ")} |`,
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
    `- Accept, group commit on / off (AGENTD_GROUP_COMMIT_ROWS=1): ${ratios("accept CreateTask", "accept CreateTask, group commit off")}.`,
  );
  if (BASELINE) {
    const cpu = (label: string) => results[label]!.map((s) => s.cpuMsPerOp);
    const cpuRatios = cpu("accept CreateTask").map((c, i) => c / cpu("accept CreateTask, baseline")[i]!);
    console.log(
      `- Accept, this tree / baseline: rate ${ratios("accept CreateTask", "accept CreateTask, baseline")}; server CPU per accepted task ` +
        `**${median(cpuRatios).toFixed(2)}×** (${Math.min(...cpuRatios).toFixed(2)}–${Math.max(...cpuRatios).toFixed(2)} by round).`,
    );
  }
  if (ACCESS_LOG_OFF) {
    const cpu = (label: string) => results[label]!.map((s) => s.cpuMsPerOp);
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

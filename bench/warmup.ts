// How many calls a fresh `agentd serve` takes to reach its steady cost (issue 13, "what limits
// each figure"). One server (runner off) on a new Postgres database, CreateTask of `simulate` with
// no steps through @grpc/grpc-js's client, 64 in flight, in consecutive windows of `--calls` calls
// from the server's first call on. For each window: calls per second and the CPU per call of the
// server (from /proc), of the caller (this process: grpc-js's client, which warms up too) and of
// Postgres (every one of its processes). The other benchmarks warm each process by `--warm`
// calls before they measure; this one shows where that count comes from.
// Postgres only: `DATABASE_URL=… npm run bench -- warmup [--calls N] [--windows W]`.
import { loadavg } from "node:os";
import {
  closedLoop,
  cpuSeconds,
  grpcJsNoopCreator,
  keyedBenchDatabase,
  numberArg,
  postgresCpuSeconds,
  spawnAgentdServe,
} from "./support.js";

const CALLS = numberArg("calls", 3000);
const WINDOWS = numberArg("windows", 10);
const IN_FLIGHT = 64;

async function main() {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    console.log("### Warm-up of a fresh server\n\nSkipped: needs DATABASE_URL.\n");
    return;
  }
  const db = await keyedBenchDatabase(adminUrl, "warmup");
  const { child, url } = await spawnAgentdServe({
    DATABASE_URL: db.url,
    AGENTD_RUNNER_CONCURRENCY: "0",
    AGENTD_LOG_LEVEL: "info",
  });
  const { create, close } = grpcJsNoopCreator(url, db.key);
  const rows: string[] = [];
  for (let w = 0; w < WINDOWS; w++) {
    const server0 = cpuSeconds(child.pid!);
    const postgres0 = postgresCpuSeconds();
    const caller0 = process.cpuUsage();
    const t0 = performance.now();
    await closedLoop(CALLS, IN_FLIGHT, create);
    const seconds = (performance.now() - t0) / 1000;
    const caller = process.cpuUsage(caller0);
    const perCall = (s: number) => ((s * 1000) / CALLS).toFixed(3);
    rows.push(
      `| ${w * CALLS + 1}–${(w + 1) * CALLS} | ${Math.round(CALLS / seconds)} | ${perCall(cpuSeconds(child.pid!) - server0)} | ${perCall((caller.user + caller.system) / 1e6)} | ${perCall(postgresCpuSeconds() - postgres0)} | ${loadavg()[0]!.toFixed(1)} |`,
    );
  }
  close();
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
  await db.drop();
  console.log("### Warm-up of a fresh server: CreateTask by window of calls, Postgres\n");
  console.log(
    `${new Date().toISOString().slice(0, 10)}, Node ${process.version}; one \`agentd serve\` (runner off), grpc-js client, ${IN_FLIGHT} in flight, ${WINDOWS} windows of ${CALLS} calls from its first call.\n`,
  );
  console.log(
    "| calls since start | per second | server CPU ms per call | caller CPU ms per call | Postgres CPU ms per call | load average |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const row of rows) console.log(row);
  console.log("");
}

await main();

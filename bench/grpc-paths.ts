// gRPC served by connect-node vs by grpc-js (AGENTD_GRPC_SERVER, issue 13 part 1): two
// `agentd serve` processes on one Postgres database, one per setting, runners off
// (AGENTD_RUNNER_CONCURRENCY=0) so that only accepting the call is measured. `CreateTask` and
// `grpc.health.v1.Health/Check` over gRPC (h2c, connect-node's client), interleaved connect,
// grpc-js, connect, grpc-js… for `--rounds` rounds, 64 calls in flight; median and range, and
// each server's CPU per call from /proc.
// Postgres only: `DATABASE_URL=… npm run bench -- grpc-paths [--calls N] [--rounds R] [--baseline DIR]`.
// `--baseline DIR` (another checkout of agentd, e.g. a `git worktree` of an earlier commit, with
// node_modules) adds a third server, grpc-js from DIR, interleaved with the other two: this tree's
// grpc-js against the baseline's on the same database and machine load.
// `--only NAME` (connect, grpc-js or grpc-js-baseline; repeatable) runs those servers alone, and
// `--cpu-prof DIR` runs each server under `node --cpu-prof`, its profile written to DIR on exit.
import type { ChildProcess } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { TaskService } from "../gen/agentd/v1/task_service_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import {
  closedLoop,
  cpuSeconds,
  keyedBenchDatabase,
  keyedGrpcTransport,
  numberArg,
  spawnAgentdServe,
} from "./support.js";

const root = new URL("..", import.meta.url).pathname;
const CALLS = numberArg("calls", 2000);
const ROUNDS = numberArg("rounds", 3);
const IN_FLIGHT = 64;
const baselineAt = process.argv.indexOf("--baseline");
const BASELINE = baselineAt > 0 ? `${process.argv[baselineAt + 1]!.replace(/\/$/, "")}/` : undefined;
const ONLY = process.argv.flatMap((a, i) => (process.argv[i - 1] === "--only" ? [a] : []));
const profileAt = process.argv.indexOf("--cpu-prof");
const PROFILE_DIR = profileAt > 0 ? process.argv[profileAt + 1] : undefined;
const SERVERS: { name: string; grpcServer: string; root: string }[] = [
  { name: "connect", grpcServer: "connect", root },
  { name: "grpc-js", grpcServer: "grpc-js", root },
  ...(BASELINE ? [{ name: "grpc-js-baseline", grpcServer: "grpc-js", root: BASELINE }] : []),
].filter((s) => ONLY.length === 0 || ONLY.includes(s.name));

function serve(databaseUrl: string, grpcServer: string, from: string, name: string) {
  return spawnAgentdServe(
    {
      DATABASE_URL: databaseUrl,
      AGENTD_GRPC_SERVER: grpcServer,
      AGENTD_RUNNER_CONCURRENCY: "0",
      AGENTD_LOG_LEVEL: "info",
      AGENTD_ACCESS_LOG_LEVEL: "silent",
    },
    {
      checkout: from,
      ...(PROFILE_DIR
        ? {
            nodeArgs: [
              "--cpu-prof",
              "--cpu-prof-interval=200",
              `--cpu-prof-dir=${PROFILE_DIR}`,
              `--cpu-prof-name=${name}.cpuprofile`,
            ],
          }
        : {}),
    },
  );
}

async function main() {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    console.log("### gRPC through connect-node vs grpc-js\n\nSkipped: needs DATABASE_URL.\n");
    return;
  }
  const db = await keyedBenchDatabase(adminUrl, "grpcpaths");
  const key = db.key;
  const noop = fromJson(ValueSchema, { steps: 0 });

  const arms: Array<{ label: string; server: string; child: ChildProcess; op: () => Promise<unknown> }> = [];
  const children: ChildProcess[] = [];
  for (const { name: server, grpcServer, root: from } of SERVERS) {
    const { child, url } = await serve(db.url, grpcServer, from, server);
    children.push(child);
    const transport = keyedGrpcTransport(url, key);
    const tasks = createClient(TaskService, transport);
    const health = createClient(Health, transport);
    arms.push({
      label: `CreateTask via ${server}`,
      server,
      child,
      op: () => tasks.createTask({ agent: "simulate", input: noop }),
    });
    arms.push({ label: `Health/Check via ${server}`, server, child, op: () => health.check({}) });
  }
  for (const arm of arms) await closedLoop(300, IN_FLIGHT, arm.op); // warm

  // Interleaved by server within each operation: connect, grpc-js[, grpc-js-baseline], connect, grpc-js…
  const order = [...arms].sort((a, b) => a.label.split(" ")[0]!.localeCompare(b.label.split(" ")[0]!));
  const samples: Record<string, { perSecond: number; cpuMs: number; load: number }[]> = {};
  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`round ${round}/${ROUNDS}`);
    for (const arm of order) {
      const cpu0 = cpuSeconds(arm.child.pid!);
      const t0 = performance.now();
      await closedLoop(CALLS, IN_FLIGHT, arm.op);
      const seconds = (performance.now() - t0) / 1000;
      samples[arm.label] ??= [];
      samples[arm.label]!.push({
        perSecond: CALLS / seconds,
        cpuMs: ((cpuSeconds(arm.child.pid!) - cpu0) * 1000) / CALLS,
        load: loadavg()[0]!,
      });
    }
  }
  for (const child of children) child.kill("SIGTERM");
  await Promise.all(children.map((child) => new Promise((resolve) => child.once("exit", resolve))));
  await db.drop();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log("### gRPC through connect-node vs grpc-js (AGENTD_GRPC_SERVER), same port design, Postgres\n");
  console.log(
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}; ${ROUNDS} interleaved rounds, ${CALLS} calls per row, ${IN_FLIGHT} in flight, runners off.\n`,
  );
  console.log("| call | per second (median) | range | server CPU ms per call (median) | load average |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const arm of order) {
    const xs = samples[arm.label]!;
    const rates = xs.map((s) => s.perSecond);
    console.log(
      `| ${arm.label} | ${median(rates).toFixed(0)} | ${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)} | ${median(xs.map((s) => s.cpuMs)).toFixed(3)} | ${xs.map((s) => s.load.toFixed(1)).join(", ")} |`,
    );
  }
  for (const op of ["CreateTask", "Health/Check"]) {
    const a = samples[`${op} via connect`];
    const b = samples[`${op} via grpc-js`];
    if (a && b) {
      const ratios = b.map((s, i) => s.perSecond / a[i]!.perSecond);
      const cpu = median(b.map((s) => s.cpuMs)) / median(a.map((s) => s.cpuMs));
      console.log(
        `\n- ${op}: grpc-js / connect rate **${median(ratios).toFixed(2)}×** (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} by round); server CPU per call ${cpu.toFixed(2)}× of connect's.`,
      );
    }
    const base = samples[`${op} via grpc-js-baseline`];
    if (b && base) {
      // Round by round: the two grpc-js servers ran back to back, under about the same load.
      const cpuRatios = b.map((s, i) => s.cpuMs / base[i]!.cpuMs);
      console.log(
        `- ${op}: grpc-js CPU per call / the baseline's **${median(cpuRatios).toFixed(2)}×** (${Math.min(...cpuRatios).toFixed(2)}–${Math.max(...cpuRatios).toFixed(2)} by round).`,
      );
    }
  }
  console.log("");
}

await main();

// `Run` of a no-op agent against the cheapest unary RPC of the same server path (issue 13,
// "Benchmarks": aim ≥ 0.5×). Both go through the one port, the router, auth and the RPC
// pipeline of one `agentd serve` process over gRPC (h2c); `Run` also creates the task, claims
// it, runs `simulate` with no steps and writes its events (group commit on, the default), while
// `grpc.health.v1.Health/Check` touches no database. Each pair is called from two clients:
// connect-node's gRPC transport and grpc-js (the client most gRPC callers use), each on one
// HTTP/2 connection. Every row is warmed (`--warm` calls, default 20000: JIT, prepared
// statements, the outbox's cache; both processes' CPU per call falls for the first 12,000 or so,
// see `bench/warmup.ts`), then the database is ANALYZEd (see keyedBenchDatabase), before
// interleaved A, B, C, D… rounds of `--calls`, `--in-flight` calls at a time (default 64; 1 makes
// them one after another, as a caller that waits for each answer does); median and range. Each row
// also reports where the machine's CPU went per call (all from /proc except the caller's, from
// process.cpuUsage): the server's, the caller's (this process: the client and the load loop),
// Postgres' (every one of its processes) and how busy the whole machine was. Client, server and
// Postgres share these cores, so when both rows keep the machine equally busy the ratio of rates is
// the inverse ratio of those sums, which is printed too: it separates CPU cost from waiting.
// Postgres only: `DATABASE_URL=… npm run bench -- unary [--calls N] [--rounds R] [--warm W] [--in-flight F]`.
import { cpus, loadavg } from "node:os";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { AgentService } from "../gen/agentd/v1/agent_service_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import {
  closedLoop,
  cpuSeconds,
  keyedBenchDatabase,
  keyedGrpcTransport,
  machineTicks,
  numberArg,
  postgresCpuSeconds,
  spawnAgentdServe,
} from "./support.js";

const root = new URL("..", import.meta.url).pathname;
const CALLS = numberArg("calls", 2000);
const ROUNDS = numberArg("rounds", 3);
const WARM = numberArg("warm", 20000);
const IN_FLIGHT = numberArg("in-flight", 64);

type Call = () => Promise<unknown>;

/** The pair through connect-node's gRPC transport. */
function connectCalls(url: string, key: string): { run: Call; health: Call; close(): void } {
  const transport = keyedGrpcTransport(url, key);
  const agents = createClient(AgentService, transport);
  const health = createClient(Health, transport);
  const noop = fromJson(ValueSchema, { steps: 0 });
  return {
    run: () => agents.run({ agent: "simulate", input: noop }),
    health: () => health.check({}),
    close() {},
  };
}

/** The same pair through grpc-js, from the .proto files (as a grpc-js caller would), one channel for both. */
function grpcJsCalls(url: string, key: string): { run: Call; health: Call; close(): void } {
  const definition = protoLoader.loadSync(["agentd/v1/agent_service.proto", "grpc/health/v1/health.proto"], {
    includeDirs: [`${root}proto`, `${root}node_modules/@grpc/proto-loader/build/proto`],
    keepCase: true,
    defaults: false,
  });
  // biome-ignore lint/suspicious/noExplicitAny: loadPackageDefinition's services are untyped
  const loaded = grpc.loadPackageDefinition(definition) as any;
  const host = new URL(url).host;
  const agents = new loaded.agentd.v1.AgentService(host, grpc.credentials.createInsecure());
  const health = new loaded.grpc.health.v1.Health(host, grpc.credentials.createInsecure(), {
    channelOverride: agents.getChannel(),
  });
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  const unary =
    (client: Record<string, (...args: unknown[]) => unknown>, method: string, request: unknown): Call =>
    () =>
      new Promise((resolve, reject) =>
        client[method]!(request, metadata, (err: unknown, res: unknown) => (err ? reject(err) : resolve(res))),
      );
  const noop = { structValue: { fields: { steps: { numberValue: 0 } } } };
  return {
    run: unary(agents, "Run", { agent: "simulate", input: noop }),
    health: unary(health, "Check", {}),
    close: () => agents.close(),
  };
}

async function main() {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    console.log("### Run vs a raw unary call\n\nSkipped: needs DATABASE_URL.\n");
    return;
  }
  const db = await keyedBenchDatabase(adminUrl, "unary");
  const { child, url } = await spawnAgentdServe({
    DATABASE_URL: db.url,
    AGENTD_LOG_LEVEL: "info",
    AGENTD_ACCESS_LOG_LEVEL: "silent",
  });
  const clients = { "connect-node": connectCalls(url, db.key), "grpc-js": grpcJsCalls(url, db.key) };
  const arms: Record<string, Call> = {};
  for (const [client, calls] of Object.entries(clients)) {
    arms[`Run (simulate, no steps), ${client}`] = calls.run;
    arms[`Health/Check, ${client}`] = calls.health;
  }
  for (const op of Object.values(arms)) await closedLoop(WARM, IN_FLIGHT, op);
  await db.analyze();

  type Sample = { perSecond: number; cpuMs: number; callerMs: number; postgresMs: number; busy: number; load: number };
  const samples: Record<string, Sample[]> = {};
  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`round ${round}/${ROUNDS}`);
    for (const [label, op] of Object.entries(arms)) {
      const postgres0 = postgresCpuSeconds();
      const ticks0 = machineTicks();
      const cpu0 = cpuSeconds(child.pid!);
      const caller0 = process.cpuUsage();
      const t0 = performance.now();
      await closedLoop(CALLS, IN_FLIGHT, op);
      const seconds = (performance.now() - t0) / 1000;
      const caller = process.cpuUsage(caller0);
      const cpuMs = ((cpuSeconds(child.pid!) - cpu0) * 1000) / CALLS;
      const ticks = machineTicks();
      samples[label] ??= [];
      samples[label].push({
        perSecond: CALLS / seconds,
        cpuMs,
        callerMs: (caller.user + caller.system) / 1000 / CALLS,
        postgresMs: ((postgresCpuSeconds() - postgres0) * 1000) / CALLS,
        busy: (ticks.busy - ticks0.busy) / (ticks.total - ticks0.total),
        load: loadavg()[0]!,
      });
    }
  }
  for (const calls of Object.values(clients)) calls.close();
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
  await db.drop();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log("### Run vs a raw unary call, same server path (gRPC, h2c), Postgres\n");
  console.log(
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}; ${WARM} warm-up calls per row, then ${ROUNDS} interleaved rounds, ${CALLS} calls per row, ${IN_FLIGHT} in flight.\n`,
  );
  console.log(
    "| call, client | per second (median) | range | CPU ms per call: server, caller, Postgres (medians) | machine busy | load average |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  const cpuSum = (x: Sample) => x.cpuMs + x.callerMs + x.postgresMs;
  for (const [label, xs] of Object.entries(samples)) {
    const rates = xs.map((s) => s.perSecond);
    const ms = (pick: (x: Sample) => number) => median(xs.map(pick)).toFixed(3);
    console.log(
      `| ${label} | ${median(rates).toFixed(0)} | ${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)} | ${ms((x) => x.cpuMs)}, ${ms((x) => x.callerMs)}, ${ms((x) => x.postgresMs)} | ${(100 * median(xs.map((x) => x.busy))).toFixed(0)} % | ${xs.map((s) => s.load.toFixed(1)).join(", ")} |`,
    );
  }
  console.log("");
  for (const client of Object.keys(clients)) {
    const run = samples[`Run (simulate, no steps), ${client}`]!;
    const raw = samples[`Health/Check, ${client}`]!;
    const ratios = run.map((s, i) => s.perSecond / raw[i]!.perSecond);
    const cpuRatios = run.map((s, i) => cpuSum(raw[i]!) / cpuSum(s));
    console.log(
      `- Run / Health/Check, ${client}: **${median(ratios).toFixed(2)}×** (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} by round); aim ≥ 0.5×. ` +
        `CPU per call of server, caller and Postgres together: Run ${median(run.map(cpuSum)).toFixed(3)} ms, Health/Check ${median(raw.map(cpuSum)).toFixed(3)} ms, ` +
        `so at equal machine use Run would run at ${median(cpuRatios).toFixed(2)}× (${Math.min(...cpuRatios).toFixed(2)}–${Math.max(...cpuRatios).toFixed(2)} by round).`,
    );
  }
  console.log("");
}

await main();

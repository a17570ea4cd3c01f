// `Run` of a no-op agent against the cheapest unary RPC of the same server path (issue 13,
// "Benchmarks": aim ≥ 0.5×). Both go through the one port, the router, auth and the RPC
// pipeline of one `agentd serve` process over gRPC (h2c); `Run` also creates the task, claims
// it, runs `simulate` with no steps and writes its events (group commit on, the default), while
// `grpc.health.v1.Health/Check` touches no database. Interleaved A, B, A, B… for `--rounds`
// rounds, 64 calls in flight; median and range, and the server's CPU per call from /proc.
// Postgres only: `DATABASE_URL=… npm run bench -- unary [--calls N] [--rounds R]`.
import { type ChildProcess, spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { createInterface } from "node:readline";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService } from "../gen/agentd/v1/agent_service_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { closedLoop, cpuSeconds, keyedBenchDatabase } from "./support.js";

const root = new URL("..", import.meta.url).pathname;
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const CALLS = arg("calls", 2000);
const ROUNDS = arg("rounds", 3);
const IN_FLIGHT = 64;

async function main() {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    console.log("### Run vs a raw unary call\n\nSkipped: needs DATABASE_URL.\n");
    return;
  }
  const db = await keyedBenchDatabase(adminUrl, "unary");
  const key = db.key;

  let serverUrl = "";
  const child: ChildProcess = spawn(process.execPath, [`${root}bin/agentd.js`, "serve", "--port", "0"], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: db.url, AGENTD_LOG_LEVEL: "info", AGENTD_ACCESS_LOG_LEVEL: "silent" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.includes('"agentd is serving"')) return;
      serverUrl = (JSON.parse(line) as { url: string }).url;
      resolve();
    });
    child.once("exit", (code) => reject(new Error(`agentd serve exited (${code})`)));
  });
  const transport = createGrpcTransport({
    baseUrl: serverUrl,
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${key}`);
        return next(req);
      },
    ],
  });
  const agents = createClient(AgentService, transport);
  const health = createClient(Health, transport);
  const noop = fromJson(ValueSchema, { steps: 0 });
  const arms = {
    "Run (simulate, no steps)": () => agents.run({ agent: "simulate", input: noop }),
    "Health/Check": () => health.check({}),
  } as const;
  for (const op of Object.values(arms)) await closedLoop(200, IN_FLIGHT, op); // warm

  const samples: Record<string, { perSecond: number; cpuMs: number; load: number }[]> = {};
  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`round ${round}/${ROUNDS}`);
    for (const [label, op] of Object.entries(arms)) {
      const cpu0 = cpuSeconds(child.pid!);
      const t0 = performance.now();
      await closedLoop(CALLS, IN_FLIGHT, op);
      const seconds = (performance.now() - t0) / 1000;
      samples[label] ??= [];
      samples[label].push({
        perSecond: CALLS / seconds,
        cpuMs: ((cpuSeconds(child.pid!) - cpu0) * 1000) / CALLS,
        load: loadavg()[0]!,
      });
    }
  }
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
  await db.drop();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log("### Run vs a raw unary call, same server path (gRPC, h2c), Postgres\n");
  console.log(
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}; ${ROUNDS} interleaved rounds, ${CALLS} calls per row, ${IN_FLIGHT} in flight.\n`,
  );
  console.log("| call | per second (median) | range | server CPU ms per call (median) | load average |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const [label, xs] of Object.entries(samples)) {
    const rates = xs.map((s) => s.perSecond);
    console.log(
      `| ${label} | ${median(rates).toFixed(0)} | ${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)} | ${median(xs.map((s) => s.cpuMs)).toFixed(3)} | ${xs.map((s) => s.load.toFixed(1)).join(", ")} |`,
    );
  }
  const run = samples["Run (simulate, no steps)"]!;
  const raw = samples["Health/Check"]!;
  const ratios = run.map((s, i) => s.perSecond / raw[i]!.perSecond);
  console.log(
    `\n- Run / Health/Check: **${median(ratios).toFixed(2)}×** (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} by round); aim ≥ 0.5×.\n`,
  );
}

await main();

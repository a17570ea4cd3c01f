// Server CPU per accepted CreateTask across "arms": `agentd serve` processes (runner off) from a
// checkout with extra environment, all alive at once on one fresh Postgres database, each warmed
// with WARM calls (default 20000, past a fresh server's warm-up: bench/warmup.ts), then measured
// ROUNDS times CALLS calls (64 in flight), interleaved and in alternating order. Server CPU per
// call from /proc. Postgres only, e.g.
//   DATABASE_URL=… ROUNDS=6 CALLS=2000 ARMS='[{"label":"main","checkout":"/work/main"},
//     {"label":"this tree"},{"label":"access log off","env":{"AGENTD_ACCESS_LOG_LEVEL":"silent"}}]' \
//     npm run bench -- accept-arms
// Every arm must log "agentd is serving" (AGENTD_LOG_LEVEL info or lower), which spawnAgentdServe waits for.
import type { ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TaskService } from "../gen/agentd/v1/task_service_pb.js";
import { closedLoop, cpuSeconds, keyedBenchDatabase, spawnAgentdServe } from "./support.js";

const root = new URL("..", import.meta.url).pathname;
const CALLS = Number(process.env.CALLS ?? 2000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const WARM = Number(process.env.WARM ?? 20000);
const arms: { label: string; checkout?: string; env?: Record<string, string>; nodeArgs?: string[] }[] = JSON.parse(
  process.env.ARMS ?? '[{"label":"this tree"}]',
);
const adminUrl = process.env.DATABASE_URL;
if (!adminUrl) {
  console.log("### CreateTask server CPU by arm\n\nSkipped: needs DATABASE_URL.\n");
  process.exit(0);
}
const db = await keyedBenchDatabase(adminUrl, "arms");
const key = db.key;
const noop = fromJson(ValueSchema, { steps: 0 });
const running: { label: string; child: ChildProcess; op: () => Promise<unknown> }[] = [];
for (const arm of arms) {
  const { child, url } = await spawnAgentdServe(
    { DATABASE_URL: db.url, AGENTD_RUNNER_CONCURRENCY: "0", AGENTD_LOG_LEVEL: "info", ...arm.env },
    { checkout: arm.checkout ?? root, nodeArgs: arm.nodeArgs ?? [] },
  );
  const client = createClient(TaskService, createGrpcTransport({ baseUrl: url }));
  const headers = { authorization: `Bearer ${key}` };
  running.push({
    label: arm.label,
    child,
    op: () => client.createTask({ agent: "simulate", input: noop }, { headers }),
  });
}
for (const r of running) await closedLoop(WARM, 64, r.op);
await db.analyze();
const samples: Record<string, { rate: number; cpu: number; load: number }[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 ? [...running].reverse() : running;
  for (const r of order) {
    console.error(`round ${round} ${r.label}`);
    const c0 = cpuSeconds(r.child.pid!);
    const t0 = performance.now();
    await closedLoop(CALLS, 64, r.op);
    const s = (performance.now() - t0) / 1000;
    samples[r.label] ??= [];
    samples[r.label]!.push({
      rate: CALLS / s,
      cpu: ((cpuSeconds(r.child.pid!) - c0) * 1000) / CALLS,
      load: loadavg()[0]!,
    });
  }
}
for (const r of running) r.child.kill("SIGTERM");
await Promise.all(running.map((r) => new Promise((res) => r.child.once("exit", res))));
await db.drop();
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [label, xs] of Object.entries(samples)) {
  console.log(
    `${label.padEnd(30)} rate ${med(xs.map((x) => x.rate)).toFixed(0)} (${xs.map((x) => x.rate.toFixed(0)).join(",")})  cpu ms ${med(xs.map((x) => x.cpu)).toFixed(3)} (${xs.map((x) => x.cpu.toFixed(3)).join(",")}) load ${xs.map((x) => x.load.toFixed(1)).join(",")}`,
  );
}

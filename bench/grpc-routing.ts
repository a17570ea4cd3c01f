// How the one port should reach grpc-js (issue 13 part 1: "decide how to route … measure the
// options"). One child process serves `grpc.health.v1.Health/Check` (no database, so only the
// RPC stack is measured) three ways at once:
//   - one port, connect-node for every protocol (AGENTD_GRPC_SERVER=connect);
//   - one port, each HTTP/2 connection routed by its first HEADERS frame to grpc-js (the default);
//   - grpc-js listening on a port of its own (the "dedicated gRPC port" option).
// Clients (connect-node's gRPC transport, h2c) run in this process, rows interleaved for
// `--rounds` rounds: on kept-open connections (64 calls in flight: the cost per call), and with a
// new connection for every call (16 at a time: the cost per connection, where routing happens).
// Server CPU per call from /proc of the child.
// `npm run bench -- grpc-routing [--calls N] [--rounds R]` (no database needed).
import { type ChildProcess, spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { addConnectRoutes } from "../services/agent/server/grpc-js/index.js";
import { createGrpcJsInjector } from "../services/agent/server/grpc-js/injector.js";
import { createHealthService } from "../services/agent/server/health.js";
import { listenOnePort } from "../services/agent/server/one-port.js";
import { silentLogger } from "../services/shared/log.js";
import { closedLoop, cpuSeconds, numberArg } from "./support.js";

const CALLS = numberArg("calls", 3000);
const ROUNDS = numberArg("rounds", 3);
const IN_FLIGHT = 64;
const NEW_CONNECTION_IN_FLIGHT = 16;

const OPTIONS = {
  "one port, connect-node only": "connect",
  "one port, first-HEADERS routing to grpc-js": "routed",
  "grpc-js on its own port": "dedicated",
} as const;
type Option = keyof typeof OPTIONS;

/** The child: the three servers, their URLs on stdout as one JSON line. */
async function serveAll(): Promise<void> {
  const health = createHealthService();
  const connect = connectNodeAdapter({ routes: health.routes });
  const plain = await listenOnePort({ handler: connect, host: "127.0.0.1", port: 0 });
  const routedGrpc = new grpc.Server();
  addConnectRoutes(routedGrpc, { routes: health.routes });
  const routed = await listenOnePort({
    handler: connect,
    host: "127.0.0.1",
    port: 0,
    grpc: (otherStreams) => createGrpcJsInjector(routedGrpc, otherStreams, silentLogger()),
  });
  const dedicated = new grpc.Server();
  addConnectRoutes(dedicated, { routes: health.routes });
  const port = await new Promise<number>((resolve, reject) =>
    dedicated.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  console.log(JSON.stringify({ connect: plain.url, routed: routed.url, dedicated: `http://127.0.0.1:${port}` }));
}

async function startChild(): Promise<{ child: ChildProcess; urls: Record<string, string> }> {
  const child = spawn(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, "--serve"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const urls = await new Promise<Record<string, string>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (line) => resolve(JSON.parse(line)));
    child.once("exit", (code) => reject(new Error(`server exited (${code})`)));
  });
  return { child, urls };
}

async function main() {
  const { child, urls } = await startChild();
  const kept = new Map<Option, ReturnType<typeof createClient<typeof Health>>>();
  for (const [label, key] of Object.entries(OPTIONS) as [Option, string][]) {
    kept.set(label, createClient(Health, createGrpcTransport({ baseUrl: urls[key]! })));
  }
  /** One call on a connection of its own, closed afterwards. */
  const onNewConnection = async (label: Option) => {
    const sessions = new Http2SessionManager(urls[OPTIONS[label]]!);
    try {
      await createClient(
        Health,
        createGrpcTransport({ baseUrl: urls[OPTIONS[label]]!, sessionManager: sessions }),
      ).check({});
    } finally {
      sessions.abort();
    }
  };
  const arms: Array<{ label: string; run: () => Promise<void>; calls: number }> = [];
  for (const label of Object.keys(OPTIONS) as Option[]) {
    arms.push({
      label: `${label}, kept-open connections`,
      calls: CALLS,
      run: () => closedLoop(CALLS, IN_FLIGHT, () => kept.get(label)!.check({})),
    });
  }
  const newCalls = Math.max(200, Math.floor(CALLS / 5));
  for (const label of Object.keys(OPTIONS) as Option[]) {
    arms.push({
      label: `${label}, a new connection per call`,
      calls: newCalls,
      run: () => closedLoop(newCalls, NEW_CONNECTION_IN_FLIGHT, () => onNewConnection(label)),
    });
  }
  for (const label of Object.keys(OPTIONS) as Option[]) {
    await closedLoop(300, IN_FLIGHT, () => kept.get(label)!.check({})); // warm
    await closedLoop(50, NEW_CONNECTION_IN_FLIGHT, () => onNewConnection(label));
  }

  const samples: Record<string, { perSecond: number; cpuMs: number; load: number }[]> = {};
  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`round ${round}/${ROUNDS}`);
    for (const arm of arms) {
      const cpu0 = cpuSeconds(child.pid!);
      const t0 = performance.now();
      await arm.run();
      const seconds = (performance.now() - t0) / 1000;
      samples[arm.label] ??= [];
      samples[arm.label]!.push({
        perSecond: arm.calls / seconds,
        cpuMs: ((cpuSeconds(child.pid!) - cpu0) * 1000) / arm.calls,
        load: loadavg()[0]!,
      });
    }
  }
  child.kill("SIGTERM");

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log("### Routing gRPC to grpc-js: the options side by side (issue 13 part 1)\n");
  console.log(
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}; Health/Check, ${ROUNDS} interleaved rounds; kept-open rows ${CALLS} calls, ${IN_FLIGHT} in flight; new-connection rows ${newCalls} calls, ${NEW_CONNECTION_IN_FLIGHT} at a time.\n`,
  );
  console.log("| option | per second (median) | range | server CPU ms per call (median) | load average |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const arm of arms) {
    const xs = samples[arm.label]!;
    const rates = xs.map((s) => s.perSecond);
    console.log(
      `| ${arm.label} | ${median(rates).toFixed(0)} | ${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)} | ${median(xs.map((s) => s.cpuMs)).toFixed(3)} | ${xs.map((s) => s.load.toFixed(1)).join(", ")} |`,
    );
  }
  for (const mode of ["kept-open connections", "a new connection per call"]) {
    const of = (label: Option) => samples[`${label}, ${mode}`]!;
    const connect = of("one port, connect-node only");
    const routed = of("one port, first-HEADERS routing to grpc-js");
    const dedicated = of("grpc-js on its own port");
    const ratio = (a: typeof routed, b: typeof routed) => median(a.map((s, i) => s.perSecond / b[i]!.perSecond));
    const cpu = (a: typeof routed) => median(a.map((s) => s.cpuMs));
    console.log(
      `\n- ${mode}: routed / connect-node **${ratio(routed, connect).toFixed(2)}×**, routed / dedicated port **${ratio(routed, dedicated).toFixed(2)}×**; server CPU per call ${cpu(connect).toFixed(3)} (connect-node), ${cpu(routed).toFixed(3)} (routed), ${cpu(dedicated).toFixed(3)} ms (dedicated).`,
    );
  }
  console.log("");
}

if (process.argv.includes("--serve")) await serveAll();
else await main();

// Idle streams on each gRPC path (issue 13 part 6): server RSS per open, idle `WatchTask`
// stream with `agentd serve` answering gRPC through connect-node (AGENTD_GRPC_SERVER=connect)
// and through grpc-js (=grpc-js), against the floor of each library: a bare server-streaming
// handler (no agentd code) that sends one message and then waits, served by grpc-js and by
// connect-node. Every measurement is a fresh server process: RSS (from /proc) after a warm-up
// of 500 streams opened and closed, then after `--idle` streams are open and have settled 3 s;
// the growth divided by the streams. Arms are interleaved (agentd connect, agentd grpc-js,
// bare grpc-js, bare connect-node, …) for `--rounds` rounds; median and range.
//
// The clients are raw HTTP/2 streams in this process (1,000 per connection, agentd's
// AGENTD_MAX_STREAMS_PER_CONNECTION here), identical for every arm, so the client costs the
// same whichever server it talks to and the server does all the decoding.
//
// Postgres only: `DATABASE_URL=… npm run bench -- idle-streams [--idle 10000] [--rounds 3]`.
// BENCH_SERVER_NODE_ARGS (e.g. "--heapsnapshot-signal=SIGUSR2") is passed to every server
// process; with BENCH_HEAPSNAP=ms each server gets SIGUSR2 before and once its streams are open,
// and the bench waits that long for each snapshot.
import { type ChildProcess, fork } from "node:child_process";
import { readFile } from "node:fs/promises";
import * as http2 from "node:http2";
import { cpus, loadavg, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { create, fromJson, toBinary } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import postgres from "postgres";
import { TaskService, WatchTaskRequestSchema } from "../gen/agentd/v1/task_service_pb.js";
import { Health, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { createApiKey } from "../services/shared/auth/api-keys.js";
import { SCOPES } from "../services/shared/auth/scopes.js";
import { runMigrations } from "../services/shared/db/migrate.js";
import { keyedGrpcTransport, numberArg, spawnAgentdServe } from "./support.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const IDLE = numberArg("idle", 10_000);
const ROUNDS = numberArg("rounds", 3);
const PER_CONNECTION = 1000;
const WARMUP = 500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter(Boolean);

type ArmName =
  | "WatchTask, connect-node"
  | "WatchTask, grpc-js"
  | "WatchTask, grpc-js (before)"
  | "bare grpc-js"
  | "bare connect-node";
/** BENCH_BEFORE=<another checkout of agentd>: one more arm, that checkout's `agentd serve` on grpc-js (before/after). */
const BEFORE = process.env.BENCH_BEFORE;
const ARMS: ArmName[] = [
  "WatchTask, connect-node",
  ...(BEFORE ? (["WatchTask, grpc-js (before)"] as const) : []),
  "WatchTask, grpc-js",
  "bare grpc-js",
  "bare connect-node",
];

interface Target {
  child: ChildProcess;
  url: string;
  path: string;
  headers: Record<string, string>;
  /** One request message, enveloped. */
  frame: Buffer;
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

function envelope(bytes: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

function startAgentd(databaseUrl: string, grpcServer: string, checkout = root) {
  return spawnAgentdServe(
    {
      DATABASE_URL: databaseUrl,
      AGENTD_GRPC_SERVER: grpcServer,
      AGENTD_MAX_STREAMS_PER_CONNECTION: String(PER_CONNECTION),
      AGENTD_MAX_STREAMS_PER_TENANT: "1000000",
      AGENTD_LOG_LEVEL: "info",
      AGENTD_ACCESS_LOG_LEVEL: "silent",
    },
    { checkout, nodeArgs },
  );
}

async function startBare(mode: "grpc-js" | "connect"): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(fileURLToPath(import.meta.url), ["--bare-child", mode], {
    execArgv: ["--import", "tsx", ...nodeArgs],
    stdio: "inherit",
  });
  const port = await new Promise<number>((r) => child.once("message", (m: { port: number }) => r(m.port)));
  return { child, url: `http://127.0.0.1:${port}` };
}

/** The bare floors: grpc.health.v1 Watch sends one message, then waits for the client to go. */
function bareChild(mode: string): void {
  if (mode === "grpc-js") {
    const server = new grpc.Server({ "grpc.max_concurrent_streams": PER_CONNECTION });
    const response = Buffer.from(toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status: 1 })));
    server.addService(
      {
        Watch: {
          path: "/grpc.health.v1.Health/Watch",
          requestStream: false,
          responseStream: true,
          requestSerialize: (m: Buffer) => m,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (m: Buffer) => m,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      {
        Watch: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
          call.write(response);
          call.once("cancelled", () => call.end());
        },
      },
    );
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) throw err;
      process.send!({ port });
    });
    return;
  }
  const server = http2.createServer(
    { settings: { maxConcurrentStreams: PER_CONNECTION } },
    connectNodeAdapter({
      routes: (router) =>
        router.service(Health, {
          check: () => ({}),
          list: () => ({}),
          async *watch(_req, ctx) {
            yield { status: 1 };
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          },
        }),
    }),
  );
  server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as { port: number }).port }));
}

/** Opens `count` streams; resolves once each has its response headers and first message. */
async function openStreams(target: Target, count: number): Promise<() => Promise<void>> {
  const sessions: http2.ClientHttp2Session[] = [];
  let ready = 0;
  let failed: string | undefined;
  for (let i = 0; i < count; i++) {
    if (i % PER_CONNECTION === 0) {
      const session = http2.connect(target.url);
      session.on("error", () => {});
      sessions.push(session);
      // Let each connection's first request go alone: the one port routes a connection by it.
      if (i > 0) await sleep(20);
    }
    const stream = sessions.at(-1)!.request({
      ":method": "POST",
      ":path": target.path,
      "content-type": "application/grpc",
      te: "trailers",
      ...target.headers,
    });
    let first = true;
    stream.on("data", () => {
      if (first) ready++;
      first = false;
    });
    stream.on("trailers", (t) => {
      failed ??= `grpc-status ${t["grpc-status"]}: ${t["grpc-message"]}`;
    });
    stream.on("error", () => {});
    stream.end(target.frame);
    // At most 200 streams waiting for their first message: a burst of 10,000 calls, each
    // authenticating and reading its task, would queue past the statement timeout (UNAVAILABLE).
    while (i + 1 - ready >= 200 && !failed) await sleep(5);
  }
  while (ready < count) {
    if (failed) throw new Error(`a stream ended early: ${failed}`);
    await sleep(100);
  }
  return async () => {
    for (const session of sessions) session.destroy();
    await sleep(200);
  };
}

async function measure(arm: ArmName, ctx: { databaseUrl: string; key: string; taskIds: string[] }) {
  const { child, url } = arm.startsWith("WatchTask")
    ? await startAgentd(
        ctx.databaseUrl,
        arm.includes("grpc-js") ? "grpc-js" : "connect",
        arm.endsWith("(before)") ? BEFORE : root,
      )
    : await startBare(arm === "bare grpc-js" ? "grpc-js" : "connect");
  try {
    const watch = arm.startsWith("WatchTask");
    const targets = (i: number): Target => ({
      child,
      url,
      path: watch ? "/agentd.v1.TaskService/WatchTask" : "/grpc.health.v1.Health/Watch",
      headers: watch ? { authorization: `Bearer ${ctx.key}` } : {},
      frame: watch
        ? envelope(
            toBinary(
              WatchTaskRequestSchema,
              create(WatchTaskRequestSchema, { taskId: ctx.taskIds[i % ctx.taskIds.length]! }),
            ),
          )
        : envelope(new Uint8Array()),
    });
    const target = targets(0);
    // Warm-up: the first calls compile code and fill caches in every server alike.
    await (await openStreams(target, WARMUP))();
    await sleep(1500);
    if (process.env.BENCH_HEAPSNAP) {
      process.kill(child.pid!, "SIGUSR2");
      await sleep(Number(process.env.BENCH_HEAPSNAP));
    }
    const before = await rssOf(child.pid!);
    const started = performance.now();
    const close = await openStreams(target, IDLE);
    const openSeconds = (performance.now() - started) / 1000;
    await sleep(3000);
    const after = await rssOf(child.pid!);
    const load = loadavg()[0]!;
    if (process.env.BENCH_HEAPSNAP) {
      process.kill(child.pid!, "SIGUSR2");
      await sleep(Number(process.env.BENCH_HEAPSNAP));
    }
    await close();
    return { before, after, perStream: (after - before) / IDLE, openSeconds, load };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
  }
}

async function main() {
  const bare = process.argv.indexOf("--bare-child");
  if (bare > 0) return bareChild(process.argv[bare + 1]!);
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    console.log("### Idle streams on each gRPC path\n\nSkipped: needs DATABASE_URL.\n");
    process.exit(0);
  }
  const name = `agentd_idlestreams_${Date.now().toString(36)}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const databaseUrl = u.toString();
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  await runMigrations(sql as never);
  const key = (await createApiKey(sql as never, { tenantId: "bench", scopes: [...SCOPES] })).key;

  // 100 tasks waiting for input: their watches stay open and idle (keep-alives only).
  const taskIds: string[] = [];
  {
    const { child, url } = await startAgentd(databaseUrl, "connect");
    const tasks = createClient(TaskService, keyedGrpcTransport(url, key));
    const ask = fromJson(ValueSchema, { ask: [{ prompt: "go?", schema: { type: "boolean" } }] });
    for (let i = 0; i < 100; i++) taskIds.push((await tasks.createTask({ agent: "simulate", input: ask })).task!.id);
    for (const id of taskIds) while ((await tasks.getTask({ taskId: id })).task?.state !== 3) await sleep(20);
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }

  const only = process.argv.indexOf("--arms");
  const arms = only > 0 ? ARMS.filter((a) => process.argv[only + 1]!.split(",").some((x) => a.includes(x))) : ARMS;
  const samples: Record<string, Awaited<ReturnType<typeof measure>>[]> = {};
  for (let round = 1; round <= ROUNDS; round++) {
    for (const arm of arms) {
      const r = await measure(arm, { databaseUrl, key, taskIds });
      samples[arm] ??= [];
      samples[arm].push(r);
      console.error(
        `round ${round}/${ROUNDS} ${arm}: ${(r.perStream / 1024).toFixed(1)} KiB per stream (RSS ${(r.before / 2 ** 20).toFixed(0)} → ${(r.after / 2 ** 20).toFixed(0)} MiB, opened in ${r.openSeconds.toFixed(1)} s, load ${r.load.toFixed(2)})`,
      );
    }
  }
  await sql.end();
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const kib = (b: number) => (b / 1024).toFixed(1);
  const per = (arm: string) => (samples[arm] ?? []).map((s) => s.perStream);
  console.log("### Idle streams on each gRPC path (issue 13 part 6), Postgres\n");
  console.log(
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ${IDLE.toLocaleString("en")} idle streams per measurement (${Math.ceil(IDLE / PER_CONNECTION)} connections), ${ROUNDS} interleaved rounds, a fresh server process each.\n`,
  );
  console.log(
    "| server | KiB per stream (median) | range | RSS before → after, MiB (median) | opened in s | load average |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const arm of arms) {
    const xs = samples[arm]!;
    const p = per(arm);
    console.log(
      `| ${arm} | ${kib(median(p))} | ${kib(Math.min(...p))}–${kib(Math.max(...p))} | ${(median(xs.map((s) => s.before)) / 2 ** 20).toFixed(0)} → ${(median(xs.map((s) => s.after)) / 2 ** 20).toFixed(0)} | ${median(xs.map((s) => s.openSeconds)).toFixed(1)} | ${xs.map((s) => s.load.toFixed(1)).join(", ")} |`,
    );
  }
  const share = (watch: ArmName, floor: ArmName) => {
    if (!samples[watch] || !samples[floor]) return;
    const own = samples[watch]!.map((s, i) => s.perStream - samples[floor]![i]!.perStream);
    console.log(
      `- agentd's own share on ${watch.slice("WatchTask, ".length)} (WatchTask − ${floor}, by round): **${kib(median(own))} KiB** per stream (${kib(Math.min(...own))}–${kib(Math.max(...own))}).`,
    );
  };
  console.log("");
  share("WatchTask, connect-node", "bare connect-node");
  share("WatchTask, grpc-js (before)", "bare grpc-js");
  share("WatchTask, grpc-js", "bare grpc-js");
  console.log("");
  process.exit(0);
}

await main();

// Streaming benchmark (issue 3), against an agent service in its own process:
//   1. token latency — agent `delta()` to client receipt, p50/p99, at 200 tokens/s, over
//      gRPC (grpc-js, RunStream) and over SSE (node:http), one stream and 20 at once;
//   2. idle streams — WatchTask streams one process holds on tasks waiting for input, and
//      the server's RSS growth per stream;
//   3. fan-out — one task, 1,000 watchers: events per second delivered in total.
//
//   npm run bench -- streams [--idle 10000] [--watchers 1000] [--seconds 5] [--write]
//
// With DATABASE_URL the server is `agentd serve` on a fresh Postgres database; without, it is
// `agentd dev` on a fresh embedded PGlite folder (the database inside the server process, as
// users run it). The clients run in this process. Times are wall-clock
// (performance.timeOrigin + now()), comparable across processes on one host. `--write`
// replaces the "## Streaming" section of BENCHMARKS.md with the results.
import { type ChildProcess, fork, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import * as http from "node:http";
import * as http2 from "node:http2";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { create, fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import postgres from "postgres";
import { TaskService, WatchTaskRequestSchema } from "../gen/agentd/v1/task_service_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { createApiKey } from "../services/shared/auth/api-keys.js";
import { SCOPES } from "../services/shared/auth/scopes.js";
import { openDatabase } from "../services/shared/db/database.js";
import { runMigrations } from "../services/shared/db/migrate.js";
import { keyedGrpcTransport, numberArg, percentile } from "./support.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const wallNow = () => performance.timeOrigin + performance.now();
const IDLE = numberArg("idle", 10_000);
const WATCHERS = numberArg("watchers", 1000);
const SECONDS = numberArg("seconds", 5);
const RATE = 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ server --

interface Server {
  url: string;
  pid: number;
  key: string;
  mode: "postgres" | "embedded";
  close(): Promise<void>;
}

async function startServer(): Promise<Server> {
  const adminUrl = process.env.DATABASE_URL;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    AGENTD_AGENTS: join(root, "bench/agents/clock.ts"),
    AGENTD_MAX_STREAMS_PER_CONNECTION: "1000",
    AGENTD_MAX_STREAMS_PER_TENANT: "100000",
    AGENTD_RUNNER_CONCURRENCY: "64",
    AGENTD_LOG_LEVEL: "info",
  };
  let dataDir: string | undefined;
  let drop: (() => Promise<void>) | undefined;
  let key = "";
  let args: string[];
  if (adminUrl) {
    const name = `agentd_bench_streams_${randomBytes(4).toString("hex")}`;
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const db = await openDatabase({ url: url.toString(), maxConnections: 1 });
    await runMigrations(db.sql);
    key = (await createApiKey(db.sql, { tenantId: "bench", scopes: [...SCOPES] })).key;
    await db.close();
    env.DATABASE_URL = url.toString();
    args = ["serve", "--port", "0"];
    drop = async () => {
      const a = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    };
  } else {
    dataDir = await mkdtemp(join(tmpdir(), "agentd-bench-streams-"));
    delete env.DATABASE_URL;
    args = ["dev", "--port", "0", "--data", dataDir];
  }
  // BENCH_SERVER_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the server.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, join(root, "bin/agentd.js"), ...args], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === "agentd is serving") resolve(entry.url!);
      } catch {
        // the dev welcome text
      }
    });
    child.once("exit", (code) => reject(new Error(`agentd exited with ${code}`)));
  });
  if (dataDir) {
    for (let i = 0; i < 100 && !key; i++) {
      key = (await readFile(join(dataDir, "dev-api-key"), "utf8").catch(() => "")).trim();
      if (!key) await sleep(50);
    }
  }
  return {
    url,
    pid: child.pid!,
    key,
    mode: adminUrl ? "postgres" : "embedded",
    async close() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      await drop?.();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The server's resident set size, in bytes. */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
}

// ----------------------------------------------------------------- clients --

const value = (json: unknown) => fromJson(ValueSchema, json as JsonValue);

function taskClients(server: Server, connections: number): Client<typeof TaskService>[] {
  return Array.from({ length: connections }, () =>
    createClient(TaskService, keyedGrpcTransport(server.url, server.key)),
  );
}

type GrpcEvent = { event?: { delta?: { text: string } } };
type StreamCall = grpc.ClientReadableStream<GrpcEvent>;

function grpcAgents(server: Server) {
  const definition = protoLoader.loadSync("agentd/v1/agent_service.proto", {
    includeDirs: [join(root, "proto")],
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    agentd: { v1: { AgentService: grpc.ServiceClientConstructor } };
  };
  return new pkg.agentd.v1.AgentService(
    new URL(server.url).host,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    RunStream(req: object, md: grpc.Metadata): StreamCall;
  };
}

/** Latencies (ms) of the tokens in a delta's text: receipt time minus each token's emit time. */
function tokenLatencies(text: string, received: number, into: number[]): void {
  for (const stamp of text.trim().split(/\s+/)) if (stamp) into.push(received - Number(stamp));
}

// ----------------------------------------------------------------- latency --

const clockInput = (tokens: number) => ({ tokens, rate: RATE, start_delay_ms: 300 });

async function latencyGrpc(server: Server, streams: number): Promise<number[]> {
  const client = grpcAgents(server);
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${server.key}`);
  const latencies: number[] = [];
  await Promise.all(
    Array.from(
      { length: streams },
      () =>
        new Promise<void>((resolve, reject) => {
          const call = client.RunStream({ agent: "bench-clock", input: toGrpcValue(clockInput(RATE * SECONDS)) }, md);
          call.on("data", (res: GrpcEvent) => {
            const received = wallNow();
            if (res.event?.delta) tokenLatencies(res.event.delta.text, received, latencies);
          });
          call.on("end", resolve);
          call.on("error", reject);
        }),
    ),
  );
  client.close();
  return latencies;
}

function toGrpcValue(json: unknown): object {
  if (typeof json === "number") return { numberValue: json };
  return {
    structValue: { fields: Object.fromEntries(Object.entries(json as object).map(([k, v]) => [k, toGrpcValue(v)])) },
  };
}

async function latencySse(server: Server, streams: number): Promise<number[]> {
  const [tasks] = taskClients(server, 1);
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: streams }, async () => {
      const { task } = await tasks!.createTask({ agent: "bench-clock", input: value(clockInput(RATE * SECONDS)) });
      await new Promise<void>((resolve, reject) => {
        const req = http.get(
          `${server.url}/v1/tasks/${task!.id}/events`,
          { headers: { authorization: `Bearer ${server.key}` }, agent: false },
          (res) => {
            res.setEncoding("utf8");
            let buffer = "";
            res.on("data", (chunk: string) => {
              const received = wallNow();
              buffer += chunk;
              for (let at = buffer.indexOf("\n\n"); at >= 0; at = buffer.indexOf("\n\n")) {
                const block = buffer.slice(0, at);
                buffer = buffer.slice(at + 2);
                if (!block.includes("event: delta")) continue;
                const data = JSON.parse(block.slice(block.indexOf("data: ") + 6)) as { delta: { text: string } };
                tokenLatencies(data.delta.text, received, latencies);
              }
            });
            res.on("end", resolve);
            res.on("error", reject);
          },
        );
        req.on("error", reject);
      });
    }),
  );
  return latencies;
}

// ------------------------------------------------------------ idle streams --

const askInput = (extra: object = {}) => value({ ask: [{ prompt: "go?", schema: { type: "boolean" } }], ...extra });

async function pausedTasks(tasks: Client<typeof TaskService>, count: number, extra: object = {}): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++)
    ids.push((await tasks.createTask({ agent: "simulate", input: askInput(extra) })).task!.id);
  for (const id of ids) {
    while ((await tasks.getTask({ taskId: id })).task?.state !== 3) await sleep(20);
  }
  return ids;
}

async function idleStreams(server: Server) {
  const connections = taskClients(server, Math.ceil(IDLE / 1000));
  const ids = await pausedTasks(connections[0]!, 100);
  const controller = new AbortController();
  setMaxListeners(0, controller.signal); // one signal ends every stream
  await sleep(1000);
  const before = await rssOf(server.pid);
  const started = performance.now();
  const streams = Array.from({ length: IDLE }, async (_, i) => {
    try {
      for await (const _res of connections[i % connections.length]!.watchTask(
        { taskId: ids[i % ids.length]! },
        { signal: controller.signal },
      )) {
        // idle: keep-alives only
      }
    } catch {
      // aborted at the end
    }
  });
  while ((await metric(server.url, "agentd_streams_open")) < IDLE) await sleep(200);
  const openSeconds = (performance.now() - started) / 1000;
  await sleep(3000);
  const after = await rssOf(server.pid);
  if (process.env.BENCH_HEAPSNAP) {
    // With BENCH_SERVER_NODE_ARGS="--heapsnapshot-signal=SIGUSR2": a heap snapshot of the server now.
    process.kill(server.pid, "SIGUSR2");
    await sleep(Number(process.env.BENCH_HEAPSNAP));
  }
  controller.abort();
  await Promise.all(streams);
  return { streams: IDLE, before, after, perStream: (after - before) / IDLE, openSeconds };
}

// ----------------------------------------------------------------- fan-out --

/**
 * One task, WATCHERS watchers. The watchers are raw HTTP/2 gRPC streams that count message
 * envelopes without decoding them: a decoding client costs more CPU per message than the server
 * does, and on a shared machine it would measure itself.
 */
async function fanOut(server: Server) {
  const [tasks] = taskClients(server, 1);
  const steps = 500;
  const [id] = await pausedTasks(tasks!, 1, { steps });
  const request = toBinary(WatchTaskRequestSchema, create(WatchTaskRequestSchema, { taskId: id! }));
  const frame = Buffer.alloc(5 + request.length);
  frame.writeUInt32BE(request.length, 1);
  frame.set(request, 5);
  const sessions = Array.from({ length: Math.ceil(WATCHERS / 250) }, () => http2.connect(server.url));
  let delivered = 0;
  let lastAt = 0;
  let open = 0;
  const statuses: string[] = [];
  const streams = Array.from(
    { length: WATCHERS },
    (_, i) =>
      new Promise<void>((resolve, reject) => {
        const stream = sessions[i % sessions.length]!.request({
          ":method": "POST",
          ":path": "/agentd.v1.TaskService/WatchTask",
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${server.key}`,
        });
        stream.once("response", () => open++);
        // Envelopes: 5 bytes (flags, length), then the message. Count them; skip the bytes.
        let header = Buffer.alloc(0);
        let body = 0;
        stream.on("data", (chunk: Buffer) => {
          for (let at = 0; at < chunk.length; ) {
            if (body > 0) {
              const take = Math.min(body, chunk.length - at);
              body -= take;
              at += take;
              continue;
            }
            const take = Math.min(5 - header.length, chunk.length - at);
            header = Buffer.concat([header, chunk.subarray(at, at + take)]);
            at += take;
            if (header.length === 5) {
              body = header.readUInt32BE(1);
              header = Buffer.alloc(0);
              delivered++;
              lastAt = performance.now();
            }
          }
        });
        stream.on("trailers", (t) => statuses.push(String(t["grpc-status"])));
        stream.on("end", resolve);
        stream.on("error", reject);
        stream.end(frame);
      }),
  );
  while (open < WATCHERS) await sleep(100);
  await sleep(500);
  const readsBefore = await metric(server.url, "agentd_stream_log_reads_total");
  const deliveredBefore = delivered;
  const started = performance.now();
  await tasks!.provideInput({ taskId: id!, value: value(true) });
  await Promise.all(streams);
  for (const session of sessions) session.close();
  if (statuses.some((st) => st !== "0"))
    throw new Error(`a watch ended with grpc-status ${statuses.find((st) => st !== "0")}`);
  const seconds = (lastAt - started) / 1000;
  const live = delivered - deliveredBefore;
  const reads = (await metric(server.url, "agentd_stream_log_reads_total")) - readsBefore;
  return {
    watchers: WATCHERS,
    events: Math.round(delivered / WATCHERS),
    delivered: live,
    seconds,
    perSecond: live / seconds,
    reads,
  };
}

// ------------------------------------------------------------ memory floor --

/**
 * The same idle-stream measurement for what agentd is built on, in child processes: a raw
 * Node HTTP/2 server that answers headers and keeps each stream open, and a bare connect-node
 * server-streaming handler (grpc.health.v1 Watch: one message, then waits). Shows how much of
 * a stream's memory is the stack underneath rather than agentd.
 */
async function memoryFloor(streams: number): Promise<{ raw: number; connect: number }> {
  const measure = async (mode: "raw" | "connect") => {
    const child = fork(fileURLToPath(import.meta.url), ["--floor-child", mode], {
      execArgv: ["--import", "tsx"],
      stdio: "inherit",
    });
    const port = await new Promise<number>((r) => child.once("message", (m: { port: number }) => r(m.port)));
    const base = `http://127.0.0.1:${port}`;
    await sleep(1000);
    const before = await rssOf(child.pid!);
    let open = 0;
    const sessions: http2.ClientHttp2Session[] = [];
    for (let i = 0; i < streams; i++) {
      if (i % 1000 === 0) sessions.push(http2.connect(base));
      const stream = sessions.at(-1)!.request({
        ":method": "POST",
        ":path": "/grpc.health.v1.Health/Watch",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("response", () => open++);
      stream.on("error", () => {});
      stream.end(Buffer.from([0, 0, 0, 0, 0])); // one empty HealthCheckRequest
    }
    while (open < streams) await sleep(100);
    await sleep(3000);
    const after = await rssOf(child.pid!);
    for (const session of sessions) session.destroy();
    child.kill();
    return (after - before) / streams;
  };
  return { raw: await measure("raw"), connect: await measure("connect") };
}

function floorChild(mode: string): void {
  const server =
    mode === "raw"
      ? http2.createServer({ settings: { maxConcurrentStreams: 1000 } }).on("stream", (stream) => {
          stream.on("error", () => {});
          stream.respond({ ":status": 200, "content-type": "application/grpc" });
        })
      : http2.createServer(
          { settings: { maxConcurrentStreams: 1000 } },
          connectNodeAdapter({
            routes: (router) =>
              router.service(Health, {
                check: () => ({}),
                list: () => ({}),
                async *watch(_req, ctx) {
                  yield {};
                  await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
                },
              }),
          }),
        );
  server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as { port: number }).port }));
}

// -------------------------------------------------------------------- main --

function stats(latencies: number[]) {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

async function main() {
  const floorMode = process.argv.find((_, i, all) => all[i - 1] === "--floor-child");
  if (floorMode) return floorChild(floorMode);
  const server = await startServer();
  try {
    const only = process.argv.find((_, i, all) => all[i - 1] === "--only");
    const latency = [];
    if (!only || only === "latency") {
      for (const [transport, streams] of [
        ["gRPC", 1],
        ["SSE", 1],
        ["gRPC", 20],
        ["SSE", 20],
      ] as const) {
        const l = transport === "gRPC" ? await latencyGrpc(server, streams) : await latencySse(server, streams);
        latency.push({ transport, streams, ...stats(l) });
      }
    }
    const idle =
      !only || only === "idle"
        ? await idleStreams(server)
        : { streams: 0, before: 0, after: 0, perStream: 0, openSeconds: 0 };
    const fan =
      !only || only === "fanout"
        ? await fanOut(server)
        : { watchers: 0, events: 0, delivered: 0, seconds: 0, perSecond: 0, reads: 0 };
    const floor = !only || only === "idle" ? await memoryFloor(Math.min(IDLE, 5000)) : { raw: 0, connect: 0 };
    const section = report(server, { latency, idle, fan, floor });
    process.stdout.write(`${section}\n`);
    if (process.argv.includes("--write")) await writeSection(section, server.mode);
  } finally {
    await server.close();
  }
}

function report(
  server: Server,
  r: {
    latency: { transport: string; streams: number; n: number; p50: number; p99: number }[];
    idle: Awaited<ReturnType<typeof idleStreams>>;
    fan: Awaited<ReturnType<typeof fanOut>>;
    floor: { raw: number; connect: number };
  },
): string {
  const mode = server.mode === "postgres" ? "Postgres (DATABASE_URL), `agentd serve`" : "embedded PGlite, `agentd dev`";
  const kib = (b: number) => (b / 1024).toFixed(1);
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  return [
    `### Streaming — ${mode}`,
    "",
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Server in its own process; clients in the benchmark process. Delta coalescing window 30 ms.`,
    "",
    `**Token latency** — \`ctx.delta()\` to client receipt, ${RATE} tokens/s per stream for ${SECONDS} s (aim: p99 < window + 20 ms = 50 ms):`,
    "",
    "| transport | streams | tokens | p50 ms | p99 ms |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...r.latency.map((l) => `| ${l.transport} | ${l.streams} | ${l.n} | ${l.p50.toFixed(1)} | ${l.p99.toFixed(1)} |`),
    "",
    `**Idle streams** — ${r.idle.streams.toLocaleString("en")} WatchTask streams (gRPC, ${Math.ceil(r.idle.streams / 1000)} connections) on 100 tasks waiting for input, opened in ${r.idle.openSeconds.toFixed(1)} s: server RSS ${mib(r.idle.before)} → ${mib(r.idle.after)} MiB, **${kib(r.idle.perStream)} KiB per stream** (aim ≤ 20 KiB). Measured the same way, ${Math.min(r.idle.streams, 5000).toLocaleString("en")} idle streams cost ${kib(r.floor.raw)} KiB each on a raw Node HTTP/2 server and ${kib(r.floor.connect)} KiB each on a bare connect-node server-streaming handler (no agentd code).`,
    "",
    `**Fan-out** — one task, ${r.fan.watchers.toLocaleString("en")} watchers (gRPC, ${Math.ceil(r.fan.watchers / 250)} connections), ${r.fan.events} events each: ${r.fan.delivered.toLocaleString("en")} events delivered in ${r.fan.seconds.toFixed(2)} s, **${Math.round(r.fan.perSecond).toLocaleString("en")} events/s** in total; the server read the log ${r.fan.reads} times for all of them.`,
    "",
  ].join("\n");
}

const SECTION_INTRO = `## Streaming (issue 3)

Method: \`bench/streams.ts\` (\`npm run bench -- streams --write\`, once with and once without
\`DATABASE_URL\`). The agent service runs in its own process with the \`bench-clock\` agent
(\`bench/agents/clock.ts\`), which stamps each token with the wall-clock time of its \`ctx.delta()\`
call; clients in the benchmark process compare it with the time of receipt. Idle-stream memory is
the server's RSS growth (from \`/proc\`, no forced GC, so it varies by ±15 % between runs) divided
by the streams opened. Fan-out delivers a 500-step \`simulate\` run, started once every watcher is
attached, to raw HTTP/2 gRPC clients that count messages without decoding them (a decoding client
costs more CPU per message than the server, and would measure itself).

What limits it:

- **Token latency** is the 30 ms coalescing window (a token waits 15 ms on average, 30 ms at most,
  for its batch to be written) plus one write, the wake-up, one shared read and the send (5–10 ms).
  Single streams meet the aim in both modes. With 20 concurrent streams, on two cores shared with
  the clients, p99 is around the aim on Postgres (49–72 ms across runs) and about 100–120 ms on the
  embedded database, where every write and read queues on its one connection.
- **Idle streams** miss the aim, and mostly not because of agentd: measured the same way, a bare
  connect-node server-streaming handler costs about 50 KiB of RSS per open stream, a raw Node HTTP/2
  stream about 7 KiB. Heap snapshots (which collect garbage first) at 2,000 idle WatchTask streams
  put the server's heap at 42 KiB per stream: about 34 KiB is connect-es's per-call pipeline (about
  fifteen suspended async-generator stages — request parsing, the implementation, serialization,
  envelopes, trailers — compiled with closure-heavy helpers), about 1 KiB Node's HTTP/2 stream, and
  about 7 KiB agentd's (the watcher's cursor and waiter, admission, the interceptors' wrappers).
  Reaching 20 KiB needs a leaner server-streaming path for WatchTask than connect-node's.
- **Fan-out** is CPU-bound in the server at about 100 µs per delivered message, mostly connect-es's
  per-message pipeline, protobuf encoding (once per watcher) and garbage collection. The log is read
  once per new batch of events, whatever the number of watchers (about 500 reads for 500,000
  deliveries).
`;

/** Rewrites the "## Streaming" section of BENCHMARKS.md: the intro, and this mode's subsection
 * (the other mode's, if present, is kept). Other sections are left as they are. */
async function writeSection(subsection: string, mode: Server["mode"]): Promise<void> {
  const file = `${root}BENCHMARKS.md`;
  const text = await readFile(file, "utf8").catch(() => "# Benchmarks\n");
  const heading = "## Streaming";
  const start = text.indexOf(`\n${heading}`);
  const end = start < 0 ? -1 : text.indexOf("\n## ", start + 1);
  const old = start < 0 ? "" : text.slice(start + 1, end < 0 ? undefined : end + 1);
  const subsections = old
    .split("\n### ")
    .slice(1)
    .map((x) => `### ${x.trim()}`);
  const mine = (x: string) => x.includes(mode === "postgres" ? "— Postgres" : "— embedded");
  const kept = subsections.filter((x) => !mine(x));
  const ordered = mode === "postgres" ? [subsection.trim(), ...kept] : [...kept, subsection.trim()];
  const section = `${SECTION_INTRO}\n${ordered.join("\n\n")}\n`;
  const before = start < 0 ? `${text.trimEnd()}\n\n` : text.slice(0, start + 1);
  const after = end < 0 ? "" : `\n${text.slice(end + 1)}`;
  await writeFile(file, `${before}${section}${after}`);
}

await main();
if (!process.argv.includes("--floor-child")) process.exit(0);

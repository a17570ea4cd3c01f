// Shared by the benchmarks: a real agent service on a fresh database, a
// closed-loop load generator, and percentiles. Not a test: run with `npm run bench`.
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import postgres from "postgres";
import { builtinAgents } from "../services/agent/agents/builtin.js";
import { createAgentRegistry } from "../services/agent/agents/registry.js";
import { createAgentService, type RunningAgentService } from "../services/agent/service.js";
import { createApiKey } from "../services/shared/auth/api-keys.js";
import { SCOPES } from "../services/shared/auth/scopes.js";
import { type Config, loadConfig } from "../services/shared/config.js";
import { type Database, openDatabase } from "../services/shared/db/database.js";
import { runMigrations } from "../services/shared/db/migrate.js";
import { silentLogger } from "../services/shared/log.js";
import { createWakeupBus } from "../services/shared/wakeup/postgres-bus.js";
import { createPostgresDatabase, databaseUrl, dropPostgresDatabase } from "../test/support/postgres-admin.js";

export interface BenchService {
  url: string;
  port: number;
  db: Database;
  key: string;
  service: RunningAgentService;
  mode: "postgres" | "embedded";
  close(): Promise<void>;
}

/** A fresh database: a new Postgres database when DATABASE_URL is set, else a new PGlite folder. */
export async function startBenchService(overrides: Partial<Config> = {}): Promise<BenchService> {
  const adminUrl = process.env.DATABASE_URL;
  let url: string | undefined;
  let dataDir: string | undefined;
  let dropDb: (() => Promise<void>) | undefined;
  if (adminUrl) {
    const name = `agentd_bench_${Date.now().toString(36)}`;
    await createPostgresDatabase(adminUrl, name, "template0");
    url = databaseUrl(adminUrl, name);
    dropDb = () => dropPostgresDatabase(adminUrl, name);
  } else {
    dataDir = await mkdtemp(join(tmpdir(), "agentd-bench-"));
  }
  const config = loadConfig({}, {}, { host: "127.0.0.1", port: 0, ...overrides });
  const db = await openDatabase({
    ...(url ? { url } : { dataDir: dataDir! }),
    maxConnections: config.dbMaxConnections,
  });
  await runMigrations(db.sql);
  const bus = await createWakeupBus(db, silentLogger());
  let registry: ReturnType<typeof createAgentRegistry> | undefined;
  registry = createAgentRegistry(builtinAgents({ config, agents: () => registry }));
  const service = await createAgentService({ db, bus, registry, config, logger: silentLogger() }).start();
  const key = (await createApiKey(db.sql, { tenantId: "bench", scopes: [...SCOPES] })).key;
  return {
    url: service.server.url,
    port: service.server.port,
    db,
    key,
    service,
    mode: url ? "postgres" : "embedded",
    async close() {
      await service.close();
      await bus.close();
      await db.close();
      await dropDb?.();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface LoadResult {
  name: string;
  ok: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** The number after `--name` on the command line, or `fallback` when the flag is absent. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value)) throw new Error(`--${name} takes a number, not ${JSON.stringify(process.argv[i + 1])}`);
  return value;
}

/** Seconds of CPU (user + system) a process has used so far, from /proc (Linux; 100 clock ticks a second). */
export function cpuSeconds(pid: number | "self"): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Seconds of CPU all of the machine's Postgres processes (backends, WAL writer, checkpointer…)
 * have used so far, from /proc: the database's share of a benchmark on a machine it shares. */
export function postgresCpuSeconds(): number {
  let seconds = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").startsWith("postgres")) seconds += cpuSeconds(Number(entry));
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return seconds;
}

/** The machine's busy and total CPU time so far (/proc/stat, every core; idle and iowait are not busy). */
export function machineTicks(): { busy: number; total: number } {
  const ticks = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - ticks[3]! - ticks[4]!, total };
}

/** Runs `op` `n` times, `inFlight` calls at a time (a closed loop of a fixed amount of work). */
export async function closedLoop(n: number, inFlight: number, op: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) await op(next++);
    }),
  );
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Closed loop: `inFlight` workers call `op` back to back for `seconds` (after a warm-up). */
export async function load(
  name: string,
  op: () => Promise<unknown>,
  opts: { inFlight: number; seconds: number; warmupSeconds?: number },
): Promise<LoadResult> {
  const run = async (seconds: number, record: boolean) => {
    const latencies: number[] = [];
    let errors = 0;
    let firstError: unknown;
    const until = performance.now() + seconds * 1000;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: opts.inFlight }, async () => {
        while (performance.now() < until) {
          const t = performance.now();
          try {
            await op();
            if (record) latencies.push(performance.now() - t);
          } catch (error) {
            errors++;
            firstError ??= error;
          }
        }
      }),
    );
    if (firstError && record) console.error(`${name}: first error:`, firstError);
    return { latencies, errors, elapsed: (performance.now() - started) / 1000 };
  };
  await run(opts.warmupSeconds ?? 1, false);
  const { latencies, errors, elapsed } = await run(opts.seconds, true);
  latencies.sort((a, b) => a - b);
  return {
    name,
    ok: latencies.length,
    errors,
    seconds: elapsed,
    perSecond: latencies.length / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

export function formatRow(r: LoadResult): string {
  return `| ${r.name} | ${r.perSecond.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.errors} |`;
}

/**
 * `agentd serve --port 0` of a checkout (this tree by default) in its own process, with `env` on
 * top of this process's environment; resolves with its URL once it logs that it serves.
 */
export async function spawnAgentdServe(
  env: Record<string, string>,
  opts: { checkout?: string; nodeArgs?: string[] } = {},
): Promise<{ child: ChildProcess; url: string }> {
  const checkout = opts.checkout ?? new URL("..", import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), join(checkout, "bin/agentd.js"), "serve", "--port", "0"],
    {
      cwd: checkout,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.includes('"agentd is serving"')) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => reject(new Error(`agentd serve exited (${code})`)));
  });
  return { child, url };
}

let taskServiceConstructor: grpc.ServiceClientConstructor | undefined;

/** grpc-js's TaskService client class, from the .proto loaded once per process (not once per server). */
function taskServiceClient(): grpc.ServiceClientConstructor {
  if (!taskServiceConstructor) {
    const definition = protoLoader.loadSync("agentd/v1/task_service.proto", {
      includeDirs: [join(import.meta.dirname, "../proto")],
      defaults: false,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      agentd: { v1: { TaskService: grpc.ServiceClientConstructor } };
    };
    taskServiceConstructor = pkg.agentd.v1.TaskService;
  }
  return taskServiceConstructor;
}

/**
 * `TaskService.CreateTask` of `simulate` with no steps through @grpc/grpc-js's client (the
 * reference gRPC client of this project, as a Node backend service would call agentd), with the
 * proto loaded at run time as grpc-js users do. One channel per caller.
 */
export function grpcJsNoopCreator(baseUrl: string, key: string): { create: () => Promise<unknown>; close(): void } {
  const TaskService = taskServiceClient();
  const client = new TaskService(new URL(baseUrl).host, grpc.credentials.createInsecure());
  const createTask = client.CreateTask as (
    req: object,
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, res?: unknown) => void,
  ) => void;
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${key}`);
  // google.protobuf.Value in protobufjs' object form: it names well-known-type fields in camelCase.
  const request = { agent: "simulate", input: { structValue: { fields: { steps: { numberValue: 0 } } } } };
  return {
    create: () =>
      new Promise((resolve, reject) =>
        createTask.call(client, request, md, (err, res) => (err ? reject(err) : resolve(res))),
      ),
    close: () => client.close(),
  };
}

/** A new, migrated Postgres database beside `adminUrl`'s, with an all-scopes API key of tenant
 * "bench"; `drop` closes and removes it. For benchmarks that spawn `agentd serve` against it.
 * `analyze` gathers its statistics, as autovacuum does within a minute of a live database's first
 * rows: call it after a warm-up, or plans cached while the tables were empty (a scan of every
 * task in the runners' completion batch) last the whole run, as only a new database's first
 * minute sees them. */
export async function keyedBenchDatabase(
  adminUrl: string,
  prefix: string,
): Promise<{ name: string; url: string; key: string; analyze: () => Promise<void>; drop: () => Promise<void> }> {
  const name = `agentd_${prefix}_${Date.now().toString(36)}`;
  await createPostgresDatabase(adminUrl, name, "template0");
  const url = databaseUrl(adminUrl, name);
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  await runMigrations(sql as never);
  const key = (await createApiKey(sql as never, { tenantId: "bench", scopes: [...SCOPES] })).key;
  await sql.end();
  const analyze = async () => {
    const session = postgres(url, { max: 1, onnotice: () => {} });
    await session`ANALYZE`;
    await session.end();
  };
  return { name, url, key, analyze, drop: () => dropPostgresDatabase(adminUrl, name) };
}

/** connect-node's gRPC transport (h2c) to `baseUrl`, sending `key` as the bearer API key. */
export function keyedGrpcTransport(baseUrl: string, key: string): Transport {
  return createGrpcTransport({
    baseUrl,
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${key}`);
        return next(req);
      },
    ],
  });
}

// Starts a real agent service for a test: its own database (fresh Postgres
// database, or a fresh copy of an embedded PGlite folder), listening on
// 127.0.0.1 port 0, and clients that reach it over the network.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { AgentService } from "../../gen/agentd/v1/agent_service_pb.js";
import { TaskService } from "../../gen/agentd/v1/task_service_pb.js";
import { WebhookService } from "../../gen/agentd/v1/webhook_service_pb.js";
import type { AgentDefinition } from "../../services/agent/agents/agent.js";
import { builtinAgents } from "../../services/agent/agents/builtin.js";
import { createAgentRegistry } from "../../services/agent/agents/registry.js";
import { createAgentService, type RunningAgentService } from "../../services/agent/service.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES, type Scope } from "../../services/shared/auth/scopes.js";
import { type Config, loadConfig } from "../../services/shared/config.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { silentLogger } from "../../services/shared/log.js";
import type { WakeupBus } from "../../services/shared/wakeup/bus.js";
import { createWakeupBus } from "../../services/shared/wakeup/postgres-bus.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { closeFailingOnLeaks } from "./leak-check.js";

export const repoRoot = new URL("../..", import.meta.url).pathname;

/** Settings that make tests fast: short leases and polls. */
export const TEST_CONFIG: Partial<Config> = {
  // AGENTD_TEST_GRPC_SERVER=connect runs any test file with connect-node serving gRPC too (.ci/run does, for the protocol suites).
  ...(process.env.AGENTD_TEST_GRPC_SERVER ? { grpcServer: process.env.AGENTD_TEST_GRPC_SERVER } : {}),
  host: "127.0.0.1",
  port: 0,
  leaseMs: 1500,
  heartbeatMs: 100,
  pollMs: 200,
  retryBackoffMs: 50,
  shutdownGraceMs: 2000,
};

export type Protocol = "connect" | "connect-http1" | "grpc" | "grpc-web" | "grpc-web-http1";

export function transportFor(baseUrl: string, protocol: Protocol, key?: string) {
  const interceptors: Interceptor[] = key
    ? [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${key}`);
          return next(req);
        },
      ]
    : [];
  switch (protocol) {
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion: "2", interceptors });
    case "connect-http1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "2", interceptors });
    case "grpc-web-http1":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });
  }
}

export interface Clients {
  agents: Client<typeof AgentService>;
  tasks: Client<typeof TaskService>;
  webhooks: Client<typeof WebhookService>;
}

export function clientsFor(baseUrl: string, key?: string, protocol: Protocol = "connect"): Clients {
  const transport = transportFor(baseUrl, protocol, key);
  const client = <S extends DescService>(service: S) => createClient(service, transport);
  return { agents: client(AgentService), tasks: client(TaskService), webhooks: client(WebhookService) };
}

export interface TestAgentd {
  url: string;
  port: number;
  db: Database;
  bus: WakeupBus;
  service: RunningAgentService;
  /** A key of tenant "t1" with every scope. */
  key: string;
  /** Clients with `key`, over Connect/h2c. */
  client: Clients;
  createKey(tenantId: string, scopes?: Scope[]): Promise<string>;
  clients(key?: string, protocol?: Protocol): Clients;
  /** Stops the server and the database; drops the test database. Fails if the test left a connection open. */
  close(): Promise<void>;
}

export async function startAgentd(
  opts: { config?: Partial<Config>; agents?: AgentDefinition[]; database?: TestDatabase; url?: string } = {},
): Promise<TestAgentd> {
  const testDb = opts.url ? undefined : (opts.database ?? (await createTestDatabase()));
  const config = loadConfig({}, {}, { ...TEST_CONFIG, ...opts.config });
  const url = opts.url ?? testDb?.url;
  const db = await openDatabase({
    ...(url ? { url } : {}),
    dataDir: testDb?.dataDir ?? config.dataDir,
    maxConnections: 10,
  });
  await runMigrations(db.sql);
  const bus = await createWakeupBus(db, silentLogger());
  let registry: ReturnType<typeof createAgentRegistry> | undefined;
  registry = createAgentRegistry([...builtinAgents({ config, agents: () => registry }), ...(opts.agents ?? [])]);
  const service = await createAgentService({ db, bus, registry, config, logger: silentLogger() }).start();
  const createKey = async (tenantId: string, scopes: Scope[] = [...SCOPES]) =>
    (await createApiKey(db.sql, { tenantId, scopes })).key;
  const key = await createKey("t1");
  const baseUrl = service.server.url;
  return {
    url: baseUrl,
    port: service.server.port,
    db,
    bus,
    service,
    key,
    client: clientsFor(baseUrl, key),
    createKey,
    clients: (k = key, protocol: Protocol = "connect") => clientsFor(baseUrl, k, protocol),
    /** Fails (after the rest is closed) if the test left a call, stream or busy connection open: see leak-check.ts. */
    async close() {
      try {
        await closeFailingOnLeaks(service.server, () => service.close());
      } finally {
        await bus.close();
        await db.close();
        await testDb?.drop();
      }
    },
  };
}

/** An `agentd` child process (serve, notifier, …) on a shared database, for tests that kill processes. */
export interface AgentdProcess {
  /** The server's URL (empty for commands that serve no RPCs). */
  url: string;
  child: ChildProcess;
  /** Structured log lines the process wrote so far. */
  logs: Record<string, unknown>[];
  /** Everything it wrote to stdout so far. */
  output(): string;
  /** Everything it wrote to stderr so far. */
  errorOutput(): string;
  /** Resolves with the exit code or signal. */
  exited: Promise<number | NodeJS.Signals | null>;
  kill(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals | null>;
}

/** Settings that make child processes fast to fail over. */
export const CHILD_TEST_ENV: Record<string, string> = {
  AGENTD_LEASE_MS: "3000",
  AGENTD_HEARTBEAT_MS: "200",
  AGENTD_POLL_MS: "200",
  AGENTD_RETRY_BACKOFF_MS: "50",
  AGENTD_LOG_LEVEL: "info",
};

/** Runs `bin/agentd.js <command>` on a shared database and resolves once it logs `ready`. */
export function spawnAgentdCommand(
  command: string,
  opts: { databaseUrl: string; ready: string; env?: Record<string, string>; args?: string[]; readyTimeoutMs?: number },
): Promise<AgentdProcess> {
  return spawnBin([command, ...(opts.args ?? [])], {
    what: `agentd ${command}`,
    env: { DATABASE_URL: opts.databaseUrl, ...CHILD_TEST_ENV, ...opts.env },
    readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
    ready: (line) => {
      const entry = logEntry(line);
      return entry?.msg === opts.ready ? (typeof entry.url === "string" ? entry.url : "") : undefined;
    },
  });
}

/** `agentd dev --port 0 --data <folder>` (embedded database, no DATABASE_URL); resolves once it
 * printed its whole welcome (URL, key, "Try it:"). Initialising PGlite can take a while on a busy machine. */
export function spawnAgentdDev(data: string, opts: { readyTimeoutMs?: number } = {}): Promise<AgentdProcess> {
  let url: string | undefined;
  return spawnBin(["dev", "--port", "0", "--data", data], {
    what: "agentd dev",
    env: { DATABASE_URL: "" },
    readyTimeoutMs: opts.readyTimeoutMs ?? 180_000,
    ready: (line) => {
      url ??= /agentd dev is running on (\S+)/.exec(line)?.[1];
      return line === "Try it:" ? url : undefined;
    },
  });
}

function logEntry(line: string): Record<string, unknown> | undefined {
  try {
    const entry: unknown = JSON.parse(line);
    return entry && typeof entry === "object" ? (entry as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // not a log line
  }
}

/** The one way tests start `bin/agentd.js`: resolves with the URL `ready` finds in a line of stdout. */
async function spawnBin(
  args: string[],
  opts: {
    what: string;
    env: Record<string, string>;
    readyTimeoutMs: number;
    ready: (line: string) => string | undefined;
  },
): Promise<AgentdProcess> {
  const child = spawn(process.execPath, [`${repoRoot}bin/agentd.js`, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  let stdout = "";
  let stderr = "";
  // Registered before readline's own listener, so a line handler sees the whole chunk in `stdout`.
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => {
    child.once("exit", (code, signal) => resolve(signal ?? code));
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL"); // nobody else holds it: it would outlive the test
      reject(new Error(`${opts.what} did not start within ${opts.readyTimeoutMs} ms:\n${stdout}\n${stderr}`));
    }, opts.readyTimeoutMs);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const entry = logEntry(line);
      if (entry) logs.push(entry);
      const found = opts.ready(line);
      if (found === undefined) return;
      clearTimeout(timer);
      resolve(found);
    });
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${opts.what} exited (${how}) before it was ready:\n${stdout}\n${stderr}`));
    });
  });
  return {
    url,
    child,
    logs,
    output: () => stdout,
    errorOutput: () => stderr,
    exited,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** `agentd serve --port 0` on a shared database. */
export function spawnAgentd(opts: {
  databaseUrl: string;
  env?: Record<string, string>;
  args?: string[];
  readyTimeoutMs?: number;
}): Promise<AgentdProcess> {
  return spawnAgentdCommand("serve", {
    ...opts,
    ready: "agentd is serving",
    args: ["--port", "0", ...(opts.args ?? [])],
  });
}

// An `agentd serve` child process on a database of its own, for tests whose
// property is "the process stays up": a crash shows as an exit, not as a
// vitest worker error. Also raw-socket and curl helpers for requests that no
// well-behaved client library would send.
import { execFile } from "node:child_process";
import * as net from "node:net";
import { promisify } from "node:util";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { openDatabase } from "../../services/shared/db/database.js";
import { type AgentdProcess, spawnAgentd } from "../support/agentd.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

export interface ChildAgentd {
  url: string;
  port: number;
  /** A key of tenant "fuzz" with every scope. */
  key: string;
  process: AgentdProcess;
  /** True while the process has not exited. */
  alive(): boolean;
  /** Log lines at level error (50) or above. */
  errorLogs(): Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startChildAgentd(env: Record<string, string> = {}): Promise<ChildAgentd> {
  const testDb: TestDatabase = await createTestDatabase();
  // The key is made before the child opens the database (an embedded one admits one process).
  const db = await openDatabase({
    ...(testDb.url ? { url: testDb.url } : { dataDir: testDb.dataDir! }),
    maxConnections: 1,
  });
  const { key } = await createApiKey(db.sql, { tenantId: "fuzz", scopes: [...SCOPES] });
  await db.close();
  const child = await spawnAgentd({
    databaseUrl: testDb.url ?? "",
    // The embedded database starts slowly on a loaded machine.
    readyTimeoutMs: 120_000,
    env: { ...(testDb.dataDir ? { AGENTD_DATA_DIR: testDb.dataDir } : {}), AGENTD_HOST: "127.0.0.1", ...env },
  });
  return {
    url: child.url,
    port: Number(new URL(child.url).port),
    key,
    process: child,
    alive: () => child.child.exitCode === null && child.child.signalCode === null,
    errorLogs: () => child.logs.filter((l) => typeof l.level === "number" && l.level >= 50),
    async close() {
      await child.kill("SIGTERM");
      await testDb.drop();
    },
  };
}

export interface CurlAnswer {
  /** HTTP status, 0 when no response arrived. */
  status: number;
  body: string;
  /** curl's exit code (0 when a response arrived, whatever its status). */
  exit: number;
}

/** Runs curl with these arguments (add the URL), reporting the status and body. */
export async function curl(args: string[]): Promise<CurlAnswer> {
  const marker = "\n@@status=";
  try {
    const { stdout } = await promisify(execFile)("curl", ["-s", "-m", "10", "-w", `${marker}%{http_code}`, ...args], {
      maxBuffer: 8 << 20,
    });
    const at = stdout.lastIndexOf(marker);
    return { status: Number(stdout.slice(at + marker.length)), body: stdout.slice(0, at), exit: 0 };
  } catch (error) {
    const e = error as { code?: number; stdout?: string };
    return { status: 0, body: e.stdout ?? "", exit: typeof e.code === "number" ? e.code : -1 };
  }
}

/**
 * Sends raw bytes on a new TCP connection and collects what comes back until the server
 * closes, `maxBytes` arrive, or `timeoutMs` passes (then the client closes).
 */
export function rawExchange(
  port: number,
  bytes: Uint8Array,
  opts: { timeoutMs?: number; maxBytes?: number; end?: boolean } = {},
): Promise<{ data: Buffer; closedByServer: boolean }> {
  const maxBytes = opts.maxBytes ?? 1 << 20;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let closedByServer = false;
    const socket = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => socket.destroy(), opts.timeoutMs ?? 2_000);
    socket.on("connect", () => {
      socket.write(bytes);
      if (opts.end) socket.end();
    });
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= maxBytes) socket.destroy();
    });
    socket.on("end", () => {
      closedByServer = true;
    });
    socket.on("error", () => {
      closedByServer = true;
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks, size), closedByServer });
    });
  });
}

/** The HTTP status of a raw HTTP/1.x answer, or 0. */
export function statusOf(answer: Buffer): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(answer.subarray(0, 32).toString("latin1"));
  return m ? Number(m[1]) : 0;
}

/** Health over Connect JSON: the server still answers. */
export async function healthOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(10_000),
    });
    return res.status === 200 && ((await res.json()) as { status?: string }).status === "SERVING";
  } catch {
    return false;
  }
}

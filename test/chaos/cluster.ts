// A throwaway Postgres cluster for chaos tests: its own data folder and a free
// loopback port, started and stopped with the server's own tools (initdb,
// pg_ctl), so a test can take the database away under load. Never the
// machine's server. Run as the `postgres` user when the tests run as root
// (Postgres refuses to run as root).
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Where initdb and pg_ctl are: $PG_BINDIR, the newest /usr/lib/postgresql/N/bin, or /usr/local/bin. */
export function findPostgresBinaries(): string | undefined {
  const candidates: string[] = [];
  if (process.env.PG_BINDIR) candidates.push(process.env.PG_BINDIR);
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(join(debian, v, "bin"));
  }
  candidates.push("/usr/local/bin", "/usr/bin");
  return candidates.find((dir) => existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl")));
}

/** Why a cluster cannot be made here, or undefined when it can. */
export function clusterUnavailableReason(): string | undefined {
  if (!findPostgresBinaries())
    return "Postgres server binaries (initdb, pg_ctl) not found; install Debian's postgresql package or set PG_BINDIR";
  if (process.getuid?.() === 0 && !existsSync("/usr/sbin/runuser") && !existsSync("/sbin/runuser")) {
    return "running as root without runuser: cannot start Postgres as the postgres user";
  }
  return undefined;
}

export interface PostgresCluster {
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust auth). */
  url: string;
  port: number;
  dataDir: string;
  /** Starts the server; nothing to do when it runs already. */
  start(): Promise<void>;
  /** `immediate` (default): like a crash, no checkpoint; `fast`: sessions ended cleanly first. */
  stop(mode?: "immediate" | "fast"): Promise<void>;
  restart(mode?: "immediate" | "fast"): Promise<void>;
  /** The URL of another database on this cluster, created on first call. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server and removes its folder. */
  destroy(): Promise<void>;
  /** Runs one SQL statement as postgres on database `postgres` (psql -c). */
  psql(statement: string): Promise<string>;
  /** Standby only: `pg_ctl promote`, waiting until it accepts writes. */
  promote(): Promise<void>;
}

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function tools() {
  const reason = clusterUnavailableReason();
  if (reason) throw new Error(reason);
  const bin = findPostgresBinaries()!;
  const asRoot = process.getuid?.() === 0;
  return (name: string, args: string[]) =>
    asRoot ? run("runuser", ["-u", "postgres", "--", join(bin, name), ...args]) : run(join(bin, name), args);
}

async function makeRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "agentd-chaos-pg-"));
  if (process.getuid?.() === 0) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    await chown(root, Number(stdout.trim()), Number(gid.trim()));
  }
  return root;
}

/** Creates and starts a cluster (on `port` if given). Throws when `clusterUnavailableReason()` says why it cannot. */
export async function startCluster(
  opts: { settings?: Record<string, string>; port?: number } = {},
): Promise<PostgresCluster> {
  const tool = tools();
  const root = await makeRoot();
  const dataDir = join(root, "data");
  await tool("initdb", [
    "-D",
    dataDir,
    "-U",
    "postgres",
    "--auth=trust",
    "-E",
    "UTF8",
    "--no-sync",
    "--no-instructions",
  ]).catch(async (error) => {
    await rm(root, { recursive: true, force: true });
    throw error;
  });
  return launch(tool, root, dataDir, opts.settings, opts.port);
}

/**
 * A hot standby of `primary` (pg_basebackup -R: streaming replication from it),
 * in its own folder on its own port. `synchronous`: the primary then waits for
 * this standby's flush before acknowledging a commit (synchronous_standby_names = '*').
 */
export async function startStandby(
  primary: PostgresCluster,
  opts: { synchronous?: boolean; settings?: Record<string, string> } = {},
): Promise<PostgresCluster> {
  const tool = tools();
  const root = await makeRoot();
  const dataDir = join(root, "data");
  await tool("pg_basebackup", [
    "-D",
    dataDir,
    "-h",
    "127.0.0.1",
    "-p",
    String(primary.port),
    "-U",
    "postgres",
    "-R",
    "-X",
    "stream",
    "--no-sync",
  ]).catch(async (error) => {
    await rm(root, { recursive: true, force: true });
    throw error;
  });
  const standby = await launch(tool, root, dataDir, opts.settings);
  if (opts.synchronous) {
    await primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'");
    await primary.psql("SELECT pg_reload_conf()");
    // Wait until the standby streams as synchronous: commits then wait for it.
    for (let i = 0; ; i++) {
      const state = await primary.psql("SELECT string_agg(sync_state, ',') FROM pg_stat_replication");
      if (state.includes("sync")) break;
      if (i > 200) throw new Error(`the standby did not become synchronous (${state})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return standby;
}

async function launch(
  tool: (name: string, args: string[]) => Promise<{ stdout: string }>,
  root: string,
  dataDir: string,
  extra: Record<string, string> | undefined,
  chosenPort?: number,
): Promise<PostgresCluster> {
  const port = chosenPort ?? (await freePort());
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: "127.0.0.1",
    unix_socket_directories: root,
    max_connections: "300",
    // A crash of the server process (stop -m immediate) loses nothing without fsync; only an OS crash would.
    fsync: "off",
    full_page_writes: "off",
    ...extra,
  };
  const options = Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(" ");
  const logFile = join(root, "server.log");
  let running = false;

  const cluster: PostgresCluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    async start() {
      if (running) return;
      await tool("pg_ctl", ["-D", dataDir, "-l", logFile, "-o", options, "-w", "-t", "60", "start"]);
      running = true;
    },
    async stop(mode = "immediate") {
      await tool("pg_ctl", ["-D", dataDir, "-m", mode, "-w", "-t", "60", "stop"]);
      running = false;
    },
    async restart(mode = "immediate") {
      await cluster.stop(mode);
      await cluster.start();
    },
    async createDatabase(name) {
      await tool("psql", [
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-qc",
        `CREATE DATABASE "${name}"`,
      ]);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async psql(statement) {
      const { stdout } = await tool("psql", [
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-Atqc",
        statement,
      ]);
      return stdout.trim();
    },
    async promote() {
      await tool("pg_ctl", ["-D", dataDir, "-w", "-t", "60", "promote"]);
      for (let i = 0; (await cluster.psql("SELECT pg_is_in_recovery()")) !== "f"; i++) {
        if (i > 600) throw new Error("the promoted standby is still in recovery");
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async destroy() {
      await cluster.stop("immediate").catch(() => {});
      await rm(root, { recursive: true, force: true });
    },
  };
  await cluster.start().catch(async (error) => {
    await rm(root, { recursive: true, force: true });
    throw error;
  });
  return cluster;
}

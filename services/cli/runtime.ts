// What every long-running command opens first: the database (migrated), the
// wake-up bus and the agents. Closed in reverse order.
import { join } from "node:path";
import { builtinAgents } from "../agent/agents/builtin.js";
import { type AgentRegistry, createAgentRegistry, loadAgentModules } from "../agent/agents/registry.js";
import { type Config, ConfigError, settingName } from "../shared/config.js";
import { type Database, openDatabase } from "../shared/db/database.js";
import { redactDatabaseUrl } from "../shared/db/database-url.js";
import { runMigrations } from "../shared/db/migrate.js";
import { untilPrimary } from "../shared/db/wait-for-primary.js";
import { createLogger, type Logger } from "../shared/log.js";
import type { WakeupBus } from "../shared/wakeup/bus.js";
import { createDeferredWakeupBus } from "../shared/wakeup/deferred-bus.js";
import { createWakeupBus } from "../shared/wakeup/postgres-bus.js";
import { findRunningServer } from "./server-file.js";

export interface Runtime {
  db: Database;
  bus: WakeupBus;
  /** Resolves once the database is migrated and the bus listens: at once, unless start-up found no writable primary. */
  ready: Promise<void>;
  /** True while `ready` is pending (waiting for a primary). */
  waiting(): boolean;
  close(): Promise<void>;
}

/**
 * What start-up does while no host of DATABASE_URL is a writable primary (a
 * standby, a failover in progress): `fail` (one-shot commands), `wait` before
 * returning (the notifier), or `serve`: return at once with `ready` pending, so
 * that the replica listens and answers UNAVAILABLE until a primary exists.
 * A configuration the server refuses (unknown database, failed authentication)
 * fails in every mode; once waiting, it ends the process.
 */
export type WhileNoPrimary = "fail" | "wait" | "serve";

export async function openRuntime(
  config: Config,
  logger: Logger,
  opts: { whileNoPrimary?: WhileNoPrimary } = {},
): Promise<Runtime> {
  const db = await openDatabase({
    ...(config.databaseUrl ? { url: config.databaseUrl } : {}),
    // The database gets its own subfolder; the data folder also holds dev-api-key.
    dataDir: join(config.dataDir, "postgres"),
    maxConnections: config.dbMaxConnections,
    logger,
  });
  const prepare = async () => {
    // Migrations take an advisory lock: replicas that find the primary together migrate once.
    const { applied } = await runMigrations(db.sql, { logger });
    if (applied.length > 0) logger.info({ applied }, "applied database migrations");
    return createWakeupBus(db, logger);
  };
  const mode = db.embedded ? "fail" : (opts.whileNoPrimary ?? "fail");
  try {
    if (mode === "fail") return runtimeOf(db, await prepare());
    const stop = new AbortController();
    let startedWaiting!: () => void;
    const waits = new Promise<undefined>((resolve) => (startedWaiting = () => resolve(undefined)));
    const prepared = untilPrimary(prepare, {
      logger,
      database: redactDatabaseUrl(db.url),
      waiting: startedWaiting,
      signal: stop.signal,
    });
    // The first attempt decides: a primary (go on), a refusal (throw), or none yet (wait).
    const first = await Promise.race([prepared, waits]);
    if (first) return runtimeOf(db, first);
    if (mode === "wait") return runtimeOf(db, await prepared);
    return waitingRuntime(db, prepared, stop, logger);
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}

function runtimeOf(db: Database, bus: WakeupBus): Runtime {
  return {
    db,
    bus,
    ready: Promise.resolve(),
    waiting: () => false,
    async close() {
      await bus.close();
      await db.close();
    },
  };
}

/** A runtime whose bus is attached once `prepared` resolves; a failure then (a refusal, a broken migration) ends the process. */
function waitingRuntime(db: Database, prepared: Promise<WakeupBus>, stop: AbortController, logger: Logger): Runtime {
  const bus = createDeferredWakeupBus();
  let waiting = true;
  const ready = prepared.then(
    (real) => {
      bus.attach(real);
      waiting = false;
    },
    (error: unknown) => {
      if (stop.signal.aborted) return new Promise<void>(() => {}); // closed while waiting: never ready
      const message = error instanceof Error ? error.message : String(error);
      logger.error({ err: message }, "agentd cannot start");
      process.stderr.write(`agentd: ${message}\n`);
      process.exit(1);
    },
  );
  return {
    db,
    bus,
    ready,
    waiting: () => waiting,
    async close() {
      stop.abort();
      await bus.close();
      await db.close();
    },
  };
}

/**
 * The built-in agents and those of --agents / AGENTD_AGENTS. An entry that cannot be loaded (not
 * found, fails to import, exports no agent, a name taken twice) is a bad setting: a ConfigError
 * naming the setting and the entry, so start-up stops with exit code 2.
 */
export async function loadAgents(config: Config): Promise<AgentRegistry> {
  const invalid = (entry: string, error: unknown) =>
    new ConfigError(
      `invalid setting ${settingName("agentModules")}=${JSON.stringify(entry)}: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  const loaded = [];
  for (const entry of config.agentModules) {
    try {
      loaded.push(...(await loadAgentModules([entry])));
    } catch (error) {
      throw invalid(entry, error);
    }
  }
  // `chat` offers the replica's other agents as tools, so it reads the registry it is part of.
  let registry: AgentRegistry | undefined;
  try {
    registry = createAgentRegistry([...builtinAgents({ config, agents: () => registry }), ...loaded]);
  } catch (error) {
    // A duplicate name or a bad schema among the loaded modules (the built-in agents alone are tested).
    if (loaded.length === 0) throw error;
    throw invalid(config.agentModules.join(","), error);
  }
  return registry;
}

/** For a one-off command (migrate, keys): the database, through the running server of an embedded data folder if there is one. */
export async function withDatabase<T>(config: Config, fn: (sql: Database["sql"]) => Promise<T>): Promise<T> {
  const logger = createLogger({ level: config.logLevel === "info" ? "warn" : config.logLevel });
  // The embedded database of a running server is open in that process: go through it.
  const running = config.databaseUrl ? undefined : await findRunningServer(config.dataDir);
  if (running) {
    const db = await openDatabase({ url: running.databaseUrl, maxConnections: 1, logger });
    try {
      return await fn(db.sql);
    } finally {
      await db.close();
    }
  }
  const runtime = await openRuntime(config, logger);
  try {
    return await fn(runtime.db.sql);
  } finally {
    await runtime.close();
  }
}

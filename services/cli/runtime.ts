// What every long-running command opens first: the database (migrated), the
// wake-up bus and the agents. Closed in reverse order.
import { join } from "node:path";
import type { Config } from "../shared/config.js";
import { type Database, openDatabase } from "../shared/db/database.js";
import { runMigrations } from "../shared/db/migrate.js";
import { createLogger, type Logger } from "../shared/log.js";
import { createWakeupBus } from "../shared/wakeup/postgres-bus.js";
import type { WakeupBus } from "../shared/wakeup/bus.js";
import { builtinAgents } from "../agent/agents/builtin.js";
import { createAgentRegistry, loadAgentModules, type AgentRegistry } from "../agent/agents/registry.js";
import { findRunningServer } from "./server-file.js";

export interface Runtime {
  db: Database;
  bus: WakeupBus;
  close(): Promise<void>;
}

export async function openRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const db = await openDatabase({
    ...(config.databaseUrl ? { url: config.databaseUrl } : {}),
    // The database gets its own subfolder; the data folder also holds dev-api-key.
    dataDir: join(config.dataDir, "postgres"),
    maxConnections: config.dbMaxConnections,
    logger,
  });
  try {
    const { applied } = await runMigrations(db.sql, { logger });
    if (applied.length > 0) logger.info({ applied }, "applied database migrations");
    const bus = await createWakeupBus(db, logger);
    return {
      db,
      bus,
      async close() {
        await bus.close();
        await db.close();
      },
    };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}

export async function loadAgents(config: Config): Promise<AgentRegistry> {
  // `chat` offers the replica's other agents as tools, so it reads the registry it is part of.
  let registry: AgentRegistry | undefined;
  registry = createAgentRegistry([
    ...builtinAgents({ config, agents: () => registry }),
    ...(await loadAgentModules(config.agentModules)),
  ]);
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

// Entry points of the notifier service.
// - `startNotifierService({db, bus, config, logger})`: the notifier and its
//   metrics listener on an open database — what `agentd notifier` and
//   `agentd dev` run.
// - `runNotifierProcess(config)`: a whole process (database, migrations, bus,
//   signals). Also runs when this file is executed directly:
//   `node --import tsx services/notifier/main.ts` (settings from the environment).
import { pathToFileURL } from "node:url";
import { type Config, ConfigError, loadConfig } from "../shared/config.js";
import { type Database, openDatabase } from "../shared/db/database.js";
import { runMigrations } from "../shared/db/migrate.js";
import { createLogger, type Logger } from "../shared/log.js";
import type { WakeupBus } from "../shared/wakeup/bus.js";
import { createWakeupBus } from "../shared/wakeup/postgres-bus.js";
import { createNotifierMetrics, serveMetrics } from "./metrics.js";
import { createNotifier, type Notifier } from "./notifier.js";

export interface RunningNotifier {
  notifier: Notifier;
  /** GET /metrics, when AGENTD_NOTIFIER_METRICS_PORT is set. */
  metricsUrl: string | undefined;
  /** Graceful: attempts in flight finish within config.shutdownGraceMs; the rest are handed back. */
  close(): Promise<void>;
}

export async function startNotifierService(deps: { db: Database; bus: WakeupBus; config: Config; logger: Logger }): Promise<RunningNotifier> {
  const { config } = deps;
  const metrics = createNotifierMetrics();
  const server = config.notifierMetricsPort > 0 ? await serveMetrics(metrics.registry, { host: config.host, port: config.notifierMetricsPort }) : undefined;
  const notifier = createNotifier({ ...deps, metrics });
  notifier.start();
  let closing: Promise<void> | undefined;
  return {
    notifier,
    metricsUrl: server?.url,
    close() {
      closing ??= (async () => {
        await notifier.stop(config.shutdownGraceMs);
        await server?.close();
      })();
      return closing;
    },
  };
}

/** Runs the notifier as its own process until SIGTERM/SIGINT. */
export async function runNotifierProcess(config: Config, logger: Logger = createLogger({ level: config.logLevel, name: "agentd-notifier" })): Promise<void> {
  const db = await openDatabase({
    ...(config.databaseUrl ? { url: config.databaseUrl } : {}),
    dataDir: config.dataDir,
    maxConnections: config.dbMaxConnections,
    logger,
  });
  let bus: WakeupBus | undefined;
  let running: RunningNotifier | undefined;
  try {
    await runMigrations(db.sql, { logger });
    bus = await createWakeupBus(db, logger);
    running = await startNotifierService({ db, bus, config, logger });
  } catch (error) {
    await bus?.close().catch(() => {});
    await db.close().catch(() => {});
    throw error;
  }
  logger.info({ owner: running.notifier.owner, embedded: db.embedded, metrics: running.metricsUrl }, "agentd notifier is running");
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) process.exit(130);
    closing = true;
    logger.info({ signal }, "notifier shutting down gracefully");
    running
      .close()
      .then(() => bus.close())
      .then(() => db.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, "notifier shutdown failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runNotifierProcess(loadConfig(process.env)).catch((error: unknown) => {
    process.stderr.write(`agentd notifier: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(error instanceof ConfigError ? 2 : 1);
  });
}

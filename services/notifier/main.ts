// Entry point of the notifier service: the notifier and its metrics listener on
// an open database — what `agentd notifier`, `agentd dev` and an embedded
// `agentd serve` run (services/cli/main.ts owns the process: database, signals).
import type { Config } from "../shared/config.js";
import type { Database } from "../shared/db/database.js";
import type { Logger } from "../shared/log.js";
import type { WakeupBus } from "../shared/wakeup/bus.js";
import { createNotifierMetrics, serveMetrics } from "./metrics.js";
import { createNotifier, type Notifier } from "./notifier.js";

export interface RunningNotifier {
  notifier: Notifier;
  /** GET /metrics, when AGENTD_NOTIFIER_METRICS_PORT is set. */
  metricsUrl: string | undefined;
  /** Graceful: attempts in flight finish within config.shutdownGraceMs; the rest are handed back. */
  close(): Promise<void>;
}

export async function startNotifierService(deps: {
  db: Database;
  bus: WakeupBus;
  config: Config;
  logger: Logger;
}): Promise<RunningNotifier> {
  const { config } = deps;
  const metrics = createNotifierMetrics();
  const server =
    config.notifierMetricsPort > 0
      ? await serveMetrics(metrics.registry, { host: config.host, port: config.notifierMetricsPort })
      : undefined;
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

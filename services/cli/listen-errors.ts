// A port or address the server cannot listen on is a bad setting: start-up stops with a
// message naming the setting and its value (exit code 2), not a bare `listen EADDRINUSE`.
import { type Config, ConfigError, settingName } from "../shared/config.js";

const WHY: Record<string, string> = {
  EADDRINUSE: "the port is in use (another agentd?); choose another port, or 0 for any free one",
  EADDRNOTAVAIL: "no network interface of this machine has that address (127.0.0.1 or 0.0.0.0 always work)",
  EACCES: "not allowed to listen there (ports below 1024 need privileges)",
  ENOTFOUND: "the host name does not resolve",
  EAI_AGAIN: "the host name does not resolve (yet)",
};

/** The listen failure as a ConfigError naming the setting it came from; any other error as it is. */
export function listenErrorAsSetting(error: unknown, config: Config): unknown {
  const e = error as NodeJS.ErrnoException & { port?: number; address?: string };
  const why = e?.code ? WHY[e.code] : undefined;
  if (!why) return error;
  const port = e.port;
  const key: keyof Config =
    port !== undefined && port !== config.port && port === config.metricsPort
      ? "metricsPort"
      : port !== undefined && port !== config.port && port === config.notifierMetricsPort
        ? "notifierMetricsPort"
        : e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND" || e.code === "EAI_AGAIN"
          ? "host"
          : "port";
  const value = config[key];
  return new ConfigError(
    `cannot listen on ${config.host}:${port ?? config.port}: invalid setting ${settingName(key)}=${JSON.stringify(value)}: ${why} (${e.code})`,
    { cause: error },
  );
}

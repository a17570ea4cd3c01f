// Configuration: one table of settings, read from flags and environment
// variables (a flag wins), validated at start with a message naming the bad
// setting. The same table feeds `--help` and the README's configuration table.

import { DatabaseUrlError, parseDatabaseUrl, redactDatabaseUrl } from "./db/database-url.js";
import { parseCidr } from "./webhooks/address-guard.js";

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string | undefined;
  dbMaxConnections: number;
  groupCommitRows: number;
  dbStatementTimeoutMs: number;
  runnerConcurrency: number;
  maxConcurrentRuns: number;
  leaseMs: number;
  heartbeatMs: number;
  pollMs: number;
  retryBackoffMs: number;
  maxRequestBytes: number;
  maxInputDepth: number;
  shutdownGraceMs: number;
  agentModules: string[];
  logLevel: string;
  webhookAllowHttp: boolean;
  webhookAllowCidrs: string[];
  webhookTimeoutMs: number;
  webhookRetryScheduleMs: number[];
  webhookThrottleMinMs: number;
  webhookConcurrency: number;
  webhookEndpointConcurrency: number;
  notifierLeaseMs: number;
  webhookRetryAfterMaxMs: number;
  webhookDisableAfterMs: number;
  notifierMetricsPort: number;
  streamKeepAliveMs: number;
  maxStreamsPerConnection: number;
  maxStreamsPerTenant: number;
  streamWindowEvents: number;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  metricsPort: number;
  shutdownDelayMs: number;
  webhookMaxPayloadBytes: number;
  accessLogLevel: string;
  grpcServer: string;
  idleTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  llmBaseUrl: string | undefined;
  llmApiKey: string | undefined;
  llmModel: string | undefined;
  llmMaxToolRounds: number;
  clientUrl: string;
  clientApiKey: string | undefined;
  corsOrigins: string[];
}

import { DELIVERY_SETTINGS } from "./settings/delivery.js";
import { EDGE_SETTINGS } from "./settings/edge.js";
import { SERVICE_SETTINGS } from "./settings/service.js";
import type { Setting } from "./settings/setting.js";

export type { Setting } from "./settings/setting.js";

/** Every setting, in the order of `--help` and the README table (the rows live in settings/). */
export const SETTINGS = [
  ...SERVICE_SETTINGS,
  ...DELIVERY_SETTINGS,
  ...EDGE_SETTINGS,
] as const satisfies readonly Setting[];

/** Which server answers gRPC (application/grpc) on the one port; see AGENTD_GRPC_SERVER. */
const GRPC_SERVERS = ["connect", "grpc-js"];
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "silent"];

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** How a setting is named in messages: `--flag / ENV`, or `ENV` when it has no flag. */
export function settingName(key: keyof Config): string {
  const setting = (SETTINGS as readonly Setting[]).find((s) => s.key === key);
  if (!setting) return key;
  return setting.flag ? `${setting.flag} / ${setting.env}` : setting.env;
}

/**
 * A browser origin the CORS check can match: `*`, `scheme://host[:port]` or `scheme://host:*`.
 * A path, a query or a missing scheme would never equal an `Origin` header, so it is refused
 * at start rather than silently matching nothing.
 */
function isOriginPattern(raw: string): boolean {
  const pattern = raw.replace(/\/+$/, "");
  if (pattern === "*") return true;
  return /^[a-z][a-z0-9+.-]*:\/\/(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:(\d{1,5}|\*))?$/i.test(pattern);
}

function parse(setting: Setting, raw: string): unknown {
  const where = settingName(setting.key);
  // A URL may carry a password: it is never echoed.
  const shown = setting.kind === "url" ? redactDatabaseUrl(raw) : raw;
  const fail = (why: string) => new ConfigError(`invalid setting ${where}=${JSON.stringify(shown)}: ${why}`);
  const int = (text: string) => {
    const t = text.trim();
    if (!/^-?\d+$/.test(t)) throw fail("must be a whole number");
    const n = Number(t);
    if (setting.min !== undefined && n < setting.min) throw fail(`must be at least ${setting.min}`);
    if (setting.max !== undefined && n > setting.max) throw fail(`must be at most ${setting.max}`);
    return n;
  };
  switch (setting.kind) {
    case "string":
      if (raw.trim() === "") throw fail("must not be empty");
      return raw;
    case "int":
      return int(raw);
    case "bool":
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw fail("must be true or false");
    case "list":
      return raw
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean);
    case "intList":
      return raw
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean)
        .map(int);
    case "url":
      // libpq's form, several hosts included: postgres://user:pass@h1:5432,h2:5432/db?target_session_attrs=primary
      try {
        parseDatabaseUrl(raw);
      } catch (e) {
        throw fail(e instanceof DatabaseUrlError ? e.message : "must be a postgres:// URL");
      }
      return raw;
  }
}

/** Builds the configuration from flags (by key) and environment variables.
 * Throws ConfigError naming the first bad setting. */
export function loadConfig(
  env: Record<string, string | undefined>,
  flags: Partial<Record<keyof Config, string>> = {},
  overrides: Partial<Config> = {},
): Config {
  const config: Record<string, unknown> = {};
  for (const setting of SETTINGS as readonly Setting[]) {
    const raw = flags[setting.key] ?? env[setting.env];
    config[setting.key] = raw === undefined || raw === "" ? setting.default : parse(setting, raw);
  }
  const result = { ...(config as unknown as Config), ...overrides };
  const bad = (key: keyof Config, value: unknown, why: string) =>
    new ConfigError(`invalid setting ${settingName(key)}=${JSON.stringify(value)}: ${why}`);
  if (result.heartbeatMs * 3 > result.leaseMs) {
    throw bad("heartbeatMs", result.heartbeatMs, `must be at most a third of AGENTD_LEASE_MS (${result.leaseMs})`);
  }
  if (result.notifierLeaseMs < result.webhookTimeoutMs + 1000) {
    throw bad(
      "notifierLeaseMs",
      result.notifierLeaseMs,
      `must be at least AGENTD_WEBHOOK_TIMEOUT_MS + 1000 (${result.webhookTimeoutMs + 1000}), or a slow attempt could be sent twice at once`,
    );
  }
  if ((result.tlsCert === undefined) !== (result.tlsKey === undefined)) {
    throw new ConfigError(
      "invalid settings: --tls-cert / AGENTD_TLS_CERT and --tls-key / AGENTD_TLS_KEY go together (set both or neither)",
    );
  }
  if (result.metricsPort !== 0 && result.metricsPort === result.port) {
    throw bad("metricsPort", result.metricsPort, "must differ from the main port (0 serves /metrics on the main port)");
  }
  if (!LOG_LEVELS.includes(result.accessLogLevel)) {
    throw bad("accessLogLevel", result.accessLogLevel, `must be one of ${LOG_LEVELS.join(", ")}`);
  }
  if (!GRPC_SERVERS.includes(result.grpcServer)) {
    throw bad("grpcServer", result.grpcServer, `must be one of ${GRPC_SERVERS.join(", ")}`);
  }
  if (result.headersTimeoutMs > result.requestTimeoutMs) {
    throw bad(
      "headersTimeoutMs",
      result.headersTimeoutMs,
      `must be at most --request-timeout-ms / AGENTD_REQUEST_TIMEOUT_MS (${result.requestTimeoutMs})`,
    );
  }
  if (result.llmBaseUrl !== undefined && !/^https?:\/\/[^/]/.test(result.llmBaseUrl)) {
    throw bad("llmBaseUrl", result.llmBaseUrl, "must be an http:// or https:// URL, e.g. http://127.0.0.1:11434/v1");
  }
  if (!LOG_LEVELS.includes(result.logLevel)) {
    throw bad("logLevel", result.logLevel, `must be one of ${LOG_LEVELS.join(", ")}`);
  }
  const badCidr = result.webhookAllowCidrs.find((c) => parseCidr(c) === null);
  if (badCidr !== undefined) {
    throw bad("webhookAllowCidrs", badCidr, "must be CIDRs like 10.0.0.0/8 or fd00::/8");
  }
  const badOrigin = result.corsOrigins.find((o) => !isOriginPattern(o));
  if (badOrigin !== undefined) {
    throw bad(
      "corsOrigins",
      badOrigin,
      "must be origins like https://app.example.com or http://localhost:8080 (scheme://host[:port], no path), scheme://host:* for any port, or * for any origin",
    );
  }
  return result;
}

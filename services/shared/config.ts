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

type Kind = "string" | "int" | "bool" | "list" | "intList" | "url";

export interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  env: string;
  flag?: string;
  kind: Kind;
  min?: number;
  max?: number;
  default: Config[K];
  help: string;
}

function s<K extends keyof Config>(setting: Setting<K>): Setting<K> {
  return setting;
}

export const SETTINGS = [
  s({ key: "host", env: "AGENTD_HOST", flag: "--host", kind: "string", default: "127.0.0.1", help: "Address to listen on. Use 0.0.0.0 to accept connections from other machines." }),
  s({ key: "port", env: "AGENTD_PORT", flag: "--port", kind: "int", min: 0, max: 65535, default: 8080, help: "Port for gRPC (h2c), Connect, gRPC-Web and SSE. 0 picks a free port." }),
  s({ key: "dataDir", env: "AGENTD_DATA_DIR", flag: "--data", kind: "string", default: "./.agentd", help: "Folder of the embedded database (used when DATABASE_URL is unset)." }),
  s({ key: "databaseUrl", env: "DATABASE_URL", flag: "--database-url", kind: "url", default: undefined, help: "Postgres URL, e.g. postgres://user@host:5432/db; several hosts for a failover pair: postgres://user@h1:5432,h2:5432/db?target_session_attrs=primary (agentd always uses the writable primary). Unset: embedded PGlite in --data." }),
  s({ key: "dbMaxConnections", env: "AGENTD_DB_MAX_CONNECTIONS", kind: "int", min: 1, max: 200, default: 10, help: "Postgres connections per process (the embedded database always uses 1)." }),
  s({ key: "runnerConcurrency", env: "AGENTD_RUNNER_CONCURRENCY", flag: "--concurrency", kind: "int", min: 0, max: 10000, default: 16, help: "Queued tasks this replica runs at once. 0: API only (unary Run still runs here)." }),
  s({ key: "maxConcurrentRuns", env: "AGENTD_MAX_CONCURRENT_RUNS", kind: "int", min: 1, max: 100000, default: 256, help: "Unary Run calls running at once in this replica; more get RESOURCE_EXHAUSTED." }),
  s({ key: "leaseMs", env: "AGENTD_LEASE_MS", kind: "int", min: 200, max: 3600000, default: 15000, help: "How long a runner's claim on a task lasts without a heartbeat; a dead runner's task is requeued after it." }),
  s({ key: "heartbeatMs", env: "AGENTD_HEARTBEAT_MS", kind: "int", min: 50, max: 60000, default: 1000, help: "How often a runner renews its leases and checks for cancellation (at most a third of the lease)." }),
  s({ key: "pollMs", env: "AGENTD_POLL_MS", kind: "int", min: 10, max: 2000, default: 2000, help: "Fallback poll interval for queues and waiters when a wake-up is missed (at most 2 s; wake-ups carry the work, so a longer one keeps an idle process's database load low)." }),
  s({ key: "retryBackoffMs", env: "AGENTD_RETRY_BACKOFF_MS", kind: "int", min: 0, max: 3600000, default: 1000, help: "Base delay before a lost attempt is retried; doubles per attempt, capped at 5 min." }),
  s({ key: "maxRequestBytes", env: "AGENTD_MAX_REQUEST_BYTES", kind: "int", min: 1024, max: 268435456, default: 4 * 1024 * 1024, help: "Largest request message accepted; larger ones get RESOURCE_EXHAUSTED." }),
  s({ key: "maxInputDepth", env: "AGENTD_MAX_INPUT_DEPTH", kind: "int", min: 1, max: 1000, default: 64, help: "Deepest nesting of JSON input accepted; deeper gets INVALID_ARGUMENT." }),
  s({ key: "shutdownGraceMs", env: "AGENTD_SHUTDOWN_GRACE_MS", kind: "int", min: 0, max: 600000, default: 10000, help: "On SIGTERM/SIGINT: how long running calls and tasks may finish before tasks are handed back." }),
  s({ key: "agentModules", env: "AGENTD_AGENTS", flag: "--agents", kind: "list", default: [], help: "Comma-separated paths of agent modules to load beside the built-in agents." }),
  s({ key: "logLevel", env: "AGENTD_LOG_LEVEL", flag: "--log-level", kind: "string", default: "info", help: "trace, debug, info, warn, error or silent." }),
  s({ key: "webhookAllowHttp", env: "AGENTD_WEBHOOK_ALLOW_HTTP", kind: "bool", default: false, help: "Allow plain http:// webhook URLs (https is required otherwise). `agentd dev` allows it." }),
  s({ key: "webhookAllowCidrs", env: "AGENTD_WEBHOOK_ALLOW_CIDRS", kind: "list", default: [], help: "Comma-separated CIDRs webhooks may reach even though private or loopback. `agentd dev` allows loopback." }),
  s({ key: "webhookTimeoutMs", env: "AGENTD_WEBHOOK_TIMEOUT_MS", kind: "int", min: 100, max: 300000, default: 15000, help: "Time a receiver has to answer a delivery with 2xx." }),
  s({ key: "webhookRetryScheduleMs", env: "AGENTD_WEBHOOK_RETRY_SCHEDULE_MS", kind: "intList", default: [5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000], help: "Delays before each retry, comma-separated ms (±20 % jitter)." }),
  s({ key: "webhookThrottleMinMs", env: "AGENTD_WEBHOOK_THROTTLE_MIN_MS", kind: "int", min: 0, max: 86400000, default: 60000, help: "Least wait after 429, 502, 503, 504 or a timeout." }),
  s({ key: "webhookConcurrency", env: "AGENTD_WEBHOOK_CONCURRENCY", kind: "int", min: 1, max: 10000, default: 64, help: "Deliveries in flight per notifier process." }),
  s({ key: "webhookEndpointConcurrency", env: "AGENTD_WEBHOOK_ENDPOINT_CONCURRENCY", kind: "int", min: 1, max: 1000, default: 8, help: "Deliveries in flight per destination (scheme, host and port) per notifier process, so one slow receiver cannot hold every slot." }),
  s({ key: "notifierLeaseMs", env: "AGENTD_NOTIFIER_LEASE_MS", kind: "int", min: 200, max: 3600000, default: 60000, help: "How long a notifier's claim on a delivery lasts; a killed notifier's deliveries are retried after it. At least the webhook timeout + 1 s." }),
  s({ key: "webhookRetryAfterMaxMs", env: "AGENTD_WEBHOOK_RETRY_AFTER_MAX_MS", kind: "int", min: 0, max: 604800000, default: 86400000, help: "Longest Retry-After a receiver can ask for; longer values are cut to it." }),
  s({ key: "webhookDisableAfterMs", env: "AGENTD_WEBHOOK_DISABLE_AFTER_MS", kind: "int", min: 1000, max: 31536000000, default: 5 * 86400000, help: "An endpoint whose attempts all failed for this long is disabled." }),
  s({ key: "notifierMetricsPort", env: "AGENTD_NOTIFIER_METRICS_PORT", kind: "int", min: 0, max: 65535, default: 0, help: "Port of the notifier's Prometheus GET /metrics listener (on AGENTD_HOST). 0: off." }),
  s({ key: "streamKeepAliveMs", env: "AGENTD_STREAM_KEEPALIVE_MS", kind: "int", min: 10, max: 19000, default: 15000, help: "A stream (WatchTask, RunStream, Converse, SSE) with nothing to send gets a keep-alive after this long (up to a second later; at most 19 s, so always within 20 s)." }),
  s({ key: "maxStreamsPerConnection", env: "AGENTD_MAX_STREAMS_PER_CONNECTION", kind: "int", min: 1, max: 100000, default: 100, help: "Open streams one client connection may hold in this replica; more get RESOURCE_EXHAUSTED (SSE: 429)." }),
  s({ key: "maxStreamsPerTenant", env: "AGENTD_MAX_STREAMS_PER_TENANT", kind: "int", min: 1, max: 1000000, default: 1000, help: "Open streams one tenant may hold in this replica; more get RESOURCE_EXHAUSTED (SSE: 429)." }),
  s({ key: "streamWindowEvents", env: "AGENTD_STREAM_WINDOW_EVENTS", kind: "int", min: 1, max: 100000, default: 256, help: "Recent events kept in memory per watched task and shared by its watchers; a watcher further behind reads the log itself." }),
  s({ key: "tlsCert", env: "AGENTD_TLS_CERT", flag: "--tls-cert", kind: "string", default: undefined, help: "PEM certificate chain file: the port then serves TLS (ALPN h2 and http/1.1) instead of cleartext. Needs --tls-key. SIGHUP reloads both files." }),
  s({ key: "tlsKey", env: "AGENTD_TLS_KEY", flag: "--tls-key", kind: "string", default: undefined, help: "PEM private key file of --tls-cert." }),
  s({ key: "metricsPort", env: "AGENTD_METRICS_PORT", kind: "int", min: 0, max: 65535, default: 0, help: "Serve GET /metrics on this port (on AGENTD_HOST, plain HTTP) instead of the main port. 0: on the main port." }),
  s({ key: "shutdownDelayMs", env: "AGENTD_SHUTDOWN_DELAY_MS", kind: "int", min: 0, max: 600000, default: 0, help: "On SIGTERM: how long /readyz answers 503 while the port still serves, so load balancers stop sending new calls before it closes." }),
  s({ key: "webhookMaxPayloadBytes", env: "AGENTD_WEBHOOK_MAX_PAYLOAD_BYTES", kind: "int", min: 4096, max: 16777216, default: 65536, help: "Largest webhook body. A task too large for it is sent without its largest fields (input, output, …), named in data.omittedFields, for the receiver to fetch with GetTask." }),
  s({ key: "accessLogLevel", env: "AGENTD_ACCESS_LOG_LEVEL", kind: "string", default: "info", help: "Level of the one access-log line per RPC (method, code, duration, tenant, key id, request id): trace, debug, info, warn, error, or silent for none. Logged only if AGENTD_LOG_LEVEL lets it through." }),
  s({ key: "idleTimeoutMs", env: "AGENTD_IDLE_TIMEOUT_MS", flag: "--idle-timeout-ms", kind: "int", min: 100, max: 86400000, default: 65000, help: "A client connection with no call or stream open (an idle HTTP/2 session, an HTTP/1.1 keep-alive connection) is closed after this long. Open streams keep their connection however quiet." }),
  s({ key: "headersTimeoutMs", env: "AGENTD_HEADERS_TIMEOUT_MS", flag: "--headers-timeout-ms", kind: "int", min: 100, max: 3600000, default: 30000, help: "A new connection must send its HTTP/2 preface and SETTINGS, or its HTTP/1.1 request headers, within this long (the protocol sniffer waits at most 10 s). At most the request timeout." }),
  s({ key: "requestTimeoutMs", env: "AGENTD_REQUEST_TIMEOUT_MS", flag: "--request-timeout-ms", kind: "int", min: 100, max: 3600000, default: 60000, help: "An HTTP/1.1 request must arrive whole, body included, within this long, or it gets 408 and its connection is closed. Answers (streams, SSE) may take longer." }),
  s({ key: "llmBaseUrl", env: "AGENTD_LLM_BASE_URL", flag: "--llm-base-url", kind: "string", default: undefined, help: "Base URL of an OpenAI-compatible Chat Completions server for the `chat` agent, e.g. http://127.0.0.1:11434/v1 (Ollama). Unset: `chat` is listed as unavailable." }),
  s({ key: "llmApiKey", env: "AGENTD_LLM_API_KEY", kind: "string", default: undefined, help: "API key sent to the LLM server as a bearer token (optional for local servers). Environment only, so it never shows in the process list; never logged." }),
  s({ key: "llmModel", env: "AGENTD_LLM_MODEL", flag: "--llm-model", kind: "string", default: undefined, help: "Model name the `chat` agent asks for, e.g. llama3.2 or gpt-4o-mini." }),
  s({ key: "llmMaxToolRounds", env: "AGENTD_LLM_MAX_TOOL_ROUNDS", flag: "--llm-max-tool-rounds", kind: "int", min: 1, max: 100, default: 8, help: "Model responses in a row that may ask for tools before a `chat` task fails with TOOL_ROUNDS_EXCEEDED." }),
  s({ key: "clientUrl", env: "AGENTD_URL", flag: "--url", kind: "string", default: "http://127.0.0.1:8080", help: "Client commands (agents, run, tasks, webhooks): the server to talk to." }),
  s({ key: "clientApiKey", env: "AGENTD_API_KEY", flag: "--key", kind: "string", default: undefined, help: "Client commands: the API key to send. Unset: the dev key file <data>/dev-api-key when it exists." }),
  s({ key: "corsOrigins", env: "AGENTD_CORS_ORIGINS", kind: "list", default: [], help: "Comma-separated origins (e.g. https://app.example.com) whose pages may call the API from a browser (CORS); `*` allows any origin. `agentd dev` allows http://localhost:* and http://127.0.0.1:*." }),
] as const satisfies readonly Setting[];

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "silent"];

export class ConfigError extends Error {
  override name = "ConfigError";
}

function parse(setting: Setting, raw: string): unknown {
  const where = setting.flag ? `${setting.flag} / ${setting.env}` : setting.env;
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
  if (result.heartbeatMs * 3 > result.leaseMs) {
    throw new ConfigError(
      `invalid setting AGENTD_HEARTBEAT_MS=${result.heartbeatMs}: must be at most a third of AGENTD_LEASE_MS (${result.leaseMs})`,
    );
  }
  if (result.notifierLeaseMs < result.webhookTimeoutMs + 1000) {
    throw new ConfigError(
      `invalid setting AGENTD_NOTIFIER_LEASE_MS=${result.notifierLeaseMs}: must be at least AGENTD_WEBHOOK_TIMEOUT_MS + 1000 (${result.webhookTimeoutMs + 1000}), or a slow attempt could be sent twice at once`,
    );
  }
  if ((result.tlsCert === undefined) !== (result.tlsKey === undefined)) {
    throw new ConfigError("invalid settings: --tls-cert / AGENTD_TLS_CERT and --tls-key / AGENTD_TLS_KEY go together (set both or neither)");
  }
  if (result.metricsPort !== 0 && result.metricsPort === result.port) {
    throw new ConfigError(`invalid setting AGENTD_METRICS_PORT=${result.metricsPort}: must differ from the main port (0 serves /metrics on the main port)`);
  }
  if (!["trace", "debug", "info", "warn", "error", "silent"].includes(result.accessLogLevel)) {
    throw new ConfigError(`invalid setting AGENTD_ACCESS_LOG_LEVEL=${JSON.stringify(result.accessLogLevel)}: must be trace, debug, info, warn, error or silent`);
  }
  if (result.headersTimeoutMs > result.requestTimeoutMs) {
    throw new ConfigError(
      `invalid setting AGENTD_HEADERS_TIMEOUT_MS=${result.headersTimeoutMs}: must be at most AGENTD_REQUEST_TIMEOUT_MS (${result.requestTimeoutMs})`,
    );
  }
  if (result.llmBaseUrl !== undefined && !/^https?:\/\/[^/]/.test(result.llmBaseUrl)) {
    throw new ConfigError(`invalid setting --llm-base-url / AGENTD_LLM_BASE_URL: must be an http:// or https:// URL`);
  }
  if (!LOG_LEVELS.includes(result.logLevel)) {
    throw new ConfigError(`invalid setting --log-level / AGENTD_LOG_LEVEL=${JSON.stringify(result.logLevel)}: must be one of ${LOG_LEVELS.join(", ")}`);
  }
  const badCidr = result.webhookAllowCidrs.find((c) => parseCidr(c) === null);
  if (badCidr !== undefined) {
    throw new ConfigError(`invalid setting AGENTD_WEBHOOK_ALLOW_CIDRS=${JSON.stringify(badCidr)}: must be CIDRs like 10.0.0.0/8 or fd00::/8`);
  }
  return result;
}

// The agentd command line (commander): dev, serve, migrate, keys.
import { readFileSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { buildConsoleIfStale } from "../agent/server/console-build.js";
import { DEV_CORS_ORIGINS } from "../agent/server/cors.js";
import { installLastResortGuard } from "../agent/server/request-failures.js";
import { createAgentService } from "../agent/service.js";
import { startNotifierService } from "../notifier/main.js";
import { createApiKey, findActiveApiKey } from "../shared/auth/api-keys.js";
import { SCOPES } from "../shared/auth/scopes.js";
import { type Config, ConfigError, SETTINGS, type Setting } from "../shared/config.js";
import { createLogger, type Logger } from "../shared/log.js";
import { startTracingFromEnv } from "../shared/tracing.js";
import { applyCliConventions, registerClientCommands } from "./client-commands/index.js";
import { registerKeyCommands } from "./key-commands.js";
import { listenErrorAsSetting } from "./listen-errors.js";
import { loadAgents, openRuntime, withDatabase } from "./runtime.js";
import { writeServerFile } from "./server-file.js";
import { addSettingOptions, configFrom, type Flags } from "./setting-options.js";

/** Runs until SIGTERM/SIGINT, then closes gracefully; a second signal exits at once. */
function untilSignal(logger: Logger, close: () => Promise<void>): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(130);
    }
    closing = true;
    logger.info({ signal }, "shutting down gracefully");
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

/** The agent service (and, for `dev`, the notifier in the same process). */
async function serve(config: Config, opts: { dev: boolean }): Promise<void> {
  const logger = createLogger({ level: config.logLevel });
  const tracing = startTracingFromEnv("agentd");
  // An error escaping a request handler fails that request, not the replica (see request-failures.ts).
  installLastResortGuard(logger);
  const registry = await loadAgents(config);
  // dev: the web console at / is rebuilt when its sources changed since the last build.
  if (opts.dev) {
    await buildConsoleIfStale().catch((err: unknown) =>
      logger.warn(
        { err: err instanceof Error ? err.message : String(err) },
        "web console not built; run npm run build:console",
      ),
    );
  }
  // Without a writable primary (a standby, a failover) the replica listens and answers UNAVAILABLE until there is one.
  const runtime = await openRuntime(config, logger, { whileNoPrimary: opts.dev ? "wait" : "serve" });
  const service = createAgentService({ db: runtime.db, bus: runtime.bus, registry, config, logger });
  const running = await service.start(runtime.waiting() ? { databaseReady: runtime.ready } : {}).catch((error) => {
    throw listenErrorAsSetting(error, config);
  });
  // The embedded database belongs to this process alone, so its notifier must run here too.
  const notifier =
    opts.dev || runtime.db.embedded
      ? await startNotifierService({
          db: runtime.db,
          bus: runtime.bus,
          config,
          logger: logger.child({ component: "notifier" }),
        })
      : undefined;
  if (runtime.waiting()) logger.info({ url: running.server.url }, "agentd is waiting for a database primary");
  void runtime.ready.then(() =>
    logger.info(
      {
        url: running.server.url,
        ...(running.metrics ? { metrics: running.metrics.url } : {}),
        embedded: runtime.db.embedded,
        agents: registry.list().map((a) => a.name),
        notifier: Boolean(notifier),
      },
      "agentd is serving",
    ),
  );
  // `agentd keys …` on this data folder goes through this process while it runs.
  const forgetServer = runtime.db.embedded
    ? await writeServerFile(config.dataDir, { url: running.server.url, databaseUrl: runtime.db.url })
    : undefined;
  if (opts.dev) await printDevWelcome(config, runtime.db.sql, running.server.url);
  if (config.tlsCert) {
    // SIGHUP: new certificate for new connections, open ones untouched; a bad file keeps the old one.
    process.on("SIGHUP", () => {
      running
        .reloadTls()
        .catch((err: unknown) =>
          logger.error(
            { err: err instanceof Error ? err.message : String(err) },
            "TLS reload failed, still using the previous certificate",
          ),
        );
    });
  }
  untilSignal(logger, async () => {
    await Promise.all([running.close(), notifier?.close()]);
    await forgetServer?.();
    await runtime.close();
    await tracing?.shutdown();
  });
}

/** `agentd notifier`: delivers webhooks from the outbox; as many replicas as wanted. */
async function notify(config: Config): Promise<void> {
  const logger = createLogger({ level: config.logLevel, name: "agentd-notifier" });
  const tracing = startTracingFromEnv("agentd-notifier");
  const runtime = await openRuntime(config, logger, { whileNoPrimary: "wait" });
  const running = await startNotifierService({ db: runtime.db, bus: runtime.bus, config, logger }).catch((error) => {
    throw listenErrorAsSetting(error, config);
  });
  logger.info(
    { owner: running.notifier.owner, embedded: runtime.db.embedded, metrics: running.metricsUrl },
    "agentd notifier is running",
  );
  untilSignal(logger, async () => {
    await running.close();
    await runtime.close();
    await tracing?.shutdown();
  });
}

/** `agentd dev`: a key with every scope for tenant `dev`, kept in the data folder (mode 0600). */
async function printDevWelcome(config: Config, sql: Parameters<typeof findActiveApiKey>[0], url: string) {
  const keyFile = join(resolve(config.dataDir), "dev-api-key");
  let key = await readFile(keyFile, "utf8").then(
    (k) => k.trim(),
    () => "",
  );
  const current = key ? await findActiveApiKey(sql, key) : undefined;
  // A key from before a scope existed (e.g. keys:manage) is replaced by one with every scope.
  if (!current || !SCOPES.every((s) => current.scopes.includes(s))) {
    key = (await createApiKey(sql, { tenantId: "dev", scopes: [...SCOPES], name: "agentd dev" })).key;
    await mkdir(resolve(config.dataDir), { recursive: true });
    await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
    await chmod(keyFile, 0o600);
  }
  const lines = [
    "",
    `agentd dev is running on ${url} (gRPC, Connect, gRPC-Web; embedded database in ${resolve(config.dataDir)})`,
    `API key for tenant "dev" (all scopes), also in ${keyFile}:`,
    `  ${key}`,
    "",
    `Web console: ${url}/ (sign in with the key above)`,
    "",
    "Try it:",
    `  npx buf curl --protocol connect --http2-prior-knowledge --reflect \\`,
    `    -H "authorization: Bearer ${key}" \\`,
    `    -d '{"agent":"summarize","input":{"text":"The river rose overnight. By morning the old bridge was closed to traffic. Engineers said the bridge would reopen once the water fell. Schools in the valley stayed open.","max_words":20}}' \\`,
    `    ${url}/agentd.v1.AgentService/Run`,
    "",
  ];
  process.stdout.write(lines.join("\n"));
}

/** Every setting with its environment variable, for `agentd --help`. */
function environmentHelp(): string {
  const lines = (SETTINGS as readonly Setting[]).map((s) => {
    const fallback =
      s.default === undefined
        ? ""
        : ` [default: ${Array.isArray(s.default) ? s.default.join(",") || "none" : String(s.default)}]`;
    return `  ${s.env.padEnd(34)} ${s.help}${fallback}`;
  });
  // Tracing reads the standard OpenTelemetry variables (services/shared/tracing.ts), not agentd settings.
  const tracing = [
    "  OTEL_EXPORTER_OTLP_ENDPOINT        OTLP over HTTP/protobuf receiver for traces (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). Unset: no tracing.",
    "  OTEL_SERVICE_NAME                  Service name on the spans. [default: agentd; the notifier: agentd-notifier]",
    "  OTEL_TRACES_SAMPLER                always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio (ratio in OTEL_TRACES_SAMPLER_ARG). [default: parentbased_always_on]",
    "  OTEL_EXPORTER_OTLP_HEADERS         Headers sent with each export, e.g. authorization=Bearer%20…; OTEL_EXPORTER_OTLP_TIMEOUT, _COMPRESSION and _CERTIFICATE apply too.",
    "  OTEL_TRACES_EXPORTER               none (or OTEL_SDK_DISABLED=true) turns tracing off. [default: otlp]",
  ];
  return (
    `\nEnvironment variables (a command's flag, where it has one, wins):\n${lines.join("\n")}\n` +
    `\nTracing (OpenTelemetry's standard variables):\n${tracing.join("\n")}\n`
  );
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string })
    .version;
}

export function buildCli(): Command {
  const program = new Command("agentd")
    .description(
      "agentd serves AI agents to other programs: synchronous Run, durable tasks, webhooks and live streams over gRPC, Connect, gRPC-Web and SSE.\n" +
        "Without DATABASE_URL it keeps its data in an embedded Postgres (PGlite) folder.",
    )
    .showHelpAfterError()
    // Names the Node it runs on: with the pinned `node` dev dependency that is Node 24 whatever the system has.
    .version(`agentd ${packageVersion()} (Node ${process.version})`)
    .addHelpText("after", environmentHelp());

  const serverKeys: (keyof Config)[] = [
    "host",
    "port",
    "dataDir",
    "databaseUrl",
    "runnerConcurrency",
    "agentModules",
    "logLevel",
    "tlsCert",
    "tlsKey",
    "idleTimeoutMs",
    "headersTimeoutMs",
    "requestTimeoutMs",
    "llmBaseUrl",
    "llmModel",
    "llmMaxToolRounds",
  ];

  addSettingOptions(
    program
      .command("dev")
      .description(
        "Run everything (agent service and notifier) in one process on the embedded database (or DATABASE_URL). Webhooks may go to plain http and loopback. On first start creates tenant `dev` " +
          "with an API key of every scope, saved to <data>/dev-api-key (mode 0600), and prints it with a ready-to-paste example.",
      ),
    serverKeys,
  ).action(async (flags: Flags) => {
    // Local receivers are the point of dev: plain http and loopback destinations are allowed.
    const config = configFrom(flags);
    await serve(
      {
        ...config,
        webhookAllowHttp: true,
        webhookAllowCidrs: [...config.webhookAllowCidrs, "127.0.0.0/8", "::1/128"],
        // Pages served by a local dev server (any port) may call the API.
        corsOrigins: [...config.corsOrigins, ...DEV_CORS_ORIGINS],
      },
      { dev: true },
    );
  });

  addSettingOptions(
    program
      .command("serve")
      .description(
        "Run the agent service (RPC handlers and a task runner). Run as many replicas as you like on one Postgres, and `agentd notifier` beside them. " +
          "On the embedded database (no DATABASE_URL) the notifier runs in this process.",
      ),
    serverKeys,
  ).action(async (flags: Flags) => {
    await serve(configFrom(flags), { dev: false });
  });

  addSettingOptions(
    program
      .command("notifier")
      .description(
        "Run the webhook notifier: claims due deliveries from the outbox, signs them (Standard Webhooks), sends and retries. " +
          "Needs DATABASE_URL to run beside `agentd serve`; run as many replicas as you like.",
      ),
    ["host", "dataDir", "databaseUrl", "logLevel"],
  ).action(async (flags: Flags) => {
    await notify(configFrom(flags));
  });

  addSettingOptions(
    program
      .command("migrate")
      .description("Apply pending database migrations and exit (servers also apply them at start)."),
    ["dataDir", "databaseUrl", "logLevel"],
  ).action(async (flags: Flags) => {
    const config = configFrom(flags);
    const logger = createLogger({ level: config.logLevel });
    await withDatabase(config, async () => {
      logger.info("database is up to date");
    });
  });

  registerKeyCommands(program);

  registerClientCommands(program);
  applyCliConventions(program);
  return program;
}

buildCli()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`agentd: ${message}\n`);
    process.exit(error instanceof ConfigError ? 2 : 1);
  });

// The agentd command line (commander): dev, serve, migrate, keys.
import { readFileSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command, Option } from "commander";
import { installLastResortGuard } from "../agent/server/request-failures.js";
import { createAgentService } from "../agent/service.js";
import { buildConsoleIfStale } from "../agent/server/console-build.js";
import { DEV_CORS_ORIGINS } from "../agent/server/cors.js";
import { startNotifierService } from "../notifier/main.js";
import { createApiKey, findActiveApiKey, listApiKeys, revokeApiKey } from "../shared/auth/api-keys.js";
import { parseScopes, type Scope, SCOPES } from "../shared/auth/scopes.js";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Config, ConfigError, loadConfig, SETTINGS, type Setting } from "../shared/config.js";
import { createLogger, type Logger } from "../shared/log.js";
import { openDatabase } from "../shared/db/database.js";
import { startTracingFromEnv } from "../shared/tracing.js";
import { describeRpcError, formatKey, keyClient, parseExpiry } from "./keys-remote.js";
import { applyCliConventions, registerClientCommands } from "./client-commands/index.js";
import { loadAgents, openRuntime } from "./runtime.js";
import { findRunningServer, writeServerFile } from "./server-file.js";

type Flags = Record<string, string | undefined>;

/** commander's camelCase option name for a setting's flag, e.g. --database-url → databaseUrl. */
function optionName(flag: string): string {
  return flag.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function addSettingOptions(command: Command, keys: (keyof Config)[]): Command {
  for (const setting of SETTINGS as readonly Setting[]) {
    if (!setting.flag || !keys.includes(setting.key)) continue;
    const fallback = setting.default === undefined ? "" : ` (default: ${JSON.stringify(setting.default)})`;
    command.addOption(new Option(`${setting.flag} <value>`, `${setting.help} Env: ${setting.env}${fallback}`));
  }
  return command;
}

function configFrom(flags: Flags, overrides: Partial<Config> = {}): Config {
  const byKey: Partial<Record<keyof Config, string>> = {};
  for (const setting of SETTINGS as readonly Setting[]) {
    if (!setting.flag) continue;
    const value = flags[optionName(setting.flag)];
    if (value !== undefined) byKey[setting.key] = value;
  }
  return loadConfig(process.env, byKey, overrides);
}

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
      logger.warn({ err: err instanceof Error ? err.message : String(err) }, "web console not built; run npm run build:console"),
    );
  }
  // Without a writable primary (a standby, a failover) the replica listens and answers UNAVAILABLE until there is one.
  const runtime = await openRuntime(config, logger, { whileNoPrimary: opts.dev ? "wait" : "serve" });
  const service = createAgentService({ db: runtime.db, bus: runtime.bus, registry, config, logger });
  const running = await service.start(runtime.waiting() ? { databaseReady: runtime.ready } : {});
  // The embedded database belongs to this process alone, so its notifier must run here too.
  const notifier = opts.dev || runtime.db.embedded
    ? await startNotifierService({ db: runtime.db, bus: runtime.bus, config, logger: logger.child({ component: "notifier" }) })
    : undefined;
  if (runtime.waiting()) logger.info({ url: running.server.url }, "agentd is waiting for a database primary");
  void runtime.ready.then(() => logger.info(
    { url: running.server.url, ...(running.metrics ? { metrics: running.metrics.url } : {}), embedded: runtime.db.embedded, agents: registry.list().map((a) => a.name), notifier: Boolean(notifier) },
    "agentd is serving",
  ));
  // `agentd keys …` on this data folder goes through this process while it runs.
  const forgetServer = runtime.db.embedded
    ? await writeServerFile(config.dataDir, { url: running.server.url, databaseUrl: runtime.db.url })
    : undefined;
  if (opts.dev) await printDevWelcome(config, runtime.db.sql, running.server.url);
  if (config.tlsCert) {
    // SIGHUP: new certificate for new connections, open ones untouched; a bad file keeps the old one.
    process.on("SIGHUP", () => {
      running.reloadTls().catch((err: unknown) =>
        logger.error({ err: err instanceof Error ? err.message : String(err) }, "TLS reload failed, still using the previous certificate"),
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
  const running = await startNotifierService({ db: runtime.db, bus: runtime.bus, config, logger });
  logger.info({ owner: running.notifier.owner, embedded: runtime.db.embedded, metrics: running.metricsUrl }, "agentd notifier is running");
  untilSignal(logger, async () => {
    await running.close();
    await runtime.close();
    await tracing?.shutdown();
  });
}

/** `agentd dev`: a key with every scope for tenant `dev`, kept in the data folder (mode 0600). */
async function printDevWelcome(config: Config, sql: Parameters<typeof findActiveApiKey>[0], url: string) {
  const keyFile = join(resolve(config.dataDir), "dev-api-key");
  let key = await readFile(keyFile, "utf8").then((k) => k.trim(), () => "");
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

async function withDatabase<T>(config: Config, fn: (sql: Parameters<typeof findActiveApiKey>[0]) => Promise<T>): Promise<T> {
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

/** Every setting with its environment variable, for `agentd --help`. */
function environmentHelp(): string {
  const lines = (SETTINGS as readonly Setting[]).map((s) => {
    const fallback = s.default === undefined ? "" : ` [default: ${Array.isArray(s.default) ? s.default.join(",") || "none" : String(s.default)}]`;
    return `  ${s.env.padEnd(34)} ${s.help}${fallback}`;
  });
  return `\nEnvironment variables (a command's flag, where it has one, wins):\n${lines.join("\n")}\n`;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
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
    "host", "port", "dataDir", "databaseUrl", "runnerConcurrency", "agentModules", "logLevel",
    "tlsCert", "tlsKey", "idleTimeoutMs", "headersTimeoutMs", "requestTimeoutMs",
    "llmBaseUrl", "llmModel", "llmMaxToolRounds",
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
      .description("Run the agent service (RPC handlers and a task runner). Run as many replicas as you like on one Postgres, and `agentd notifier` beside them. " +
          "On the embedded database (no DATABASE_URL) the notifier runs in this process."),
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
    program.command("migrate").description("Apply pending database migrations and exit (servers also apply them at start)."),
    ["dataDir", "databaseUrl", "logLevel"],
  ).action(async (flags: Flags) => {
    const config = configFrom(flags);
    const logger = createLogger({ level: config.logLevel });
    await withDatabase(config, async () => {
      logger.info("database is up to date");
    });
  });

  const keys = program.command("keys").description(
    "Manage API keys (stored only as SHA-256 hashes): directly on the database, through the running server of the data folder, " +
      "or with --url/--key through a server's KeyService (the calling key's tenant; scope keys:manage).",
  );
  const remoteOptions = (command: Command) =>
    command
      .option("--url <url>", "A running server (e.g. http://127.0.0.1:8080): go through its KeyService instead of the database.")
      .option("--key <key>", "With --url: an API key with scope keys:manage; keys are those of its tenant.");
  addSettingOptions(
    remoteOptions(
      keys
        .command("create")
        .description("Create an API key and print it once.")
        .option("--tenant <tenant>", "Tenant the key belongs to (created if new). Required unless --url.")
        .requiredOption("--scopes <scopes>", `Comma-separated scopes, or "all": ${SCOPES.join(", ")}.`)
        .option("--name <name>", "A note to recognise the key by.")
        .option("--expires <when>", "When the key stops working: a duration from now (90d, 12h, 30m) or a time (2027-01-31T00:00:00Z). Default: never."),
    ),
    ["dataDir", "databaseUrl", "logLevel"],
  ).action(async (flags: Flags & { tenant?: string; scopes: string; name?: string; expires?: string; url?: string; key?: string }) => {
    const scopes = flags.scopes.trim() === "all" ? ["all"] : parseScopes(flags.scopes);
    const expireTime = flags.expires ? parseExpiry(flags.expires) : null;
    if (flags.url) {
      if (flags.tenant) throw new ConfigError("--tenant does not apply with --url: keys are created in the tenant of --key");
      const client = keyClient(flags.url, flags.key);
      const res = await client
        .createKey({ scopes, name: flags.name ?? "", ...(expireTime ? { expireTime: timestampFromDate(expireTime) } : {}) })
        .catch((e: unknown) => Promise.reject(describeRpcError(e)));
      process.stdout.write(`${res.secret}\n`);
      process.stderr.write(`key id ${res.key?.id} with scopes ${res.key?.scopes.join(",")}: store it now, it is not shown again\n`);
      return;
    }
    if (!flags.tenant) throw new ConfigError("--tenant is required (or --url and --key to create a key in that key's tenant)");
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(flags.tenant)) {
      throw new ConfigError(`invalid --tenant ${JSON.stringify(flags.tenant)}: use 1-63 letters, digits, '.', '_' or '-'`);
    }
    const tenantId = flags.tenant;
    const granted = scopes[0] === "all" ? [...SCOPES] : (scopes as Scope[]);
    const created = await withDatabase(configFrom(flags), (sql) =>
      createApiKey(sql, { tenantId, scopes: granted, expireTime, ...(flags.name ? { name: flags.name } : {}) }),
    );
    process.stdout.write(`${created.key}\n`);
    process.stderr.write(`key id ${created.info.keyId} for tenant ${tenantId} with scopes ${granted.join(",")}: store it now, it is not shown again\n`);
  });
  addSettingOptions(
    remoteOptions(keys.command("list").description("List API keys (never the keys themselves).").option("--tenant <tenant>", "Only this tenant's keys.")),
    ["dataDir", "databaseUrl", "logLevel"],
  ).action(async (flags: Flags & { tenant?: string; url?: string; key?: string }) => {
    if (flags.url) {
      const res = await keyClient(flags.url, flags.key).listKeys({}).catch((e: unknown) => Promise.reject(describeRpcError(e)));
      for (const k of res.keys) process.stdout.write(`${formatKey(k)}\n`);
      return;
    }
    const list = await withDatabase(configFrom(flags), (sql) => listApiKeys(sql, flags.tenant));
    for (const k of list) {
      const state = k.revokeTime ? `revoked ${k.revokeTime.toISOString()}` : k.expireTime ? `expires ${k.expireTime.toISOString()}` : "active";
      process.stdout.write(`${k.keyId}  ${k.tenantId}  ${k.keyPrefix}…  ${k.scopes.join(",")}  ${state}  ${k.name}\n`);
    }
  });
  addSettingOptions(
    remoteOptions(keys.command("revoke").description("Revoke an API key by its id (see `keys list`).").argument("<key-id>", "The key's id.")),
    ["dataDir", "databaseUrl", "logLevel"],
  ).action(async (keyId: string, flags: Flags & { url?: string; key?: string }) => {
    if (!/^[0-9a-f-]{36}$/i.test(keyId)) throw new ConfigError(`invalid key id ${JSON.stringify(keyId)}: see \`agentd keys list\``);
    if (flags.url) {
      await keyClient(flags.url, flags.key).revokeKey({ keyId }).catch((e: unknown) => Promise.reject(describeRpcError(e)));
      process.stdout.write(`revoked ${keyId}\n`);
      return;
    }
    const revoked = await withDatabase(configFrom(flags), (sql) => revokeApiKey(sql, keyId));
    if (!revoked) throw new ConfigError(`no API key with id ${keyId}`);
    process.stdout.write(`revoked ${keyId} (tenant ${revoked.tenantId})\n`);
  });

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

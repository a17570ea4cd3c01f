// `agentd keys create|list|revoke`: on the database, through the running server of the data
// folder, or with --url/--key through a server's KeyService.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import { createApiKey, listApiKeys, revokeApiKey } from "../shared/auth/api-keys.js";
import { parseScopes, SCOPES, type Scope } from "../shared/auth/scopes.js";
import { ConfigError } from "../shared/config.js";
import { describeRpcError, formatKey, keyClient, parseExpiry } from "./keys-remote.js";
import { withDatabase } from "./runtime.js";
import { addSettingOptions, configFrom, type Flags } from "./setting-options.js";

export function registerKeyCommands(program: Command): void {
  const keys = program
    .command("keys")
    .description(
      "Manage API keys (stored only as SHA-256 hashes): directly on the database, through the running server of the data folder, " +
        "or with --url/--key through a server's KeyService (the calling key's tenant; scope keys:manage).",
    );
  const remoteOptions = (command: Command) =>
    command
      .option(
        "--url <url>",
        "A running server (e.g. http://127.0.0.1:8080): go through its KeyService instead of the database.",
      )
      .option("--key <key>", "With --url: an API key with scope keys:manage; keys are those of its tenant.");
  addSettingOptions(
    remoteOptions(
      keys
        .command("create")
        .description("Create an API key and print it once.")
        .option("--tenant <tenant>", "Tenant the key belongs to (created if new). Required unless --url.")
        .requiredOption("--scopes <scopes>", `Comma-separated scopes, or "all": ${SCOPES.join(", ")}.`)
        .option("--name <name>", "A note to recognise the key by.")
        .option(
          "--expires <when>",
          "When the key stops working: a duration from now (90d, 12h, 30m) or a time (2027-01-31T00:00:00Z). Default: never.",
        ),
    ),
    ["dataDir", "databaseUrl", "logLevel"],
  ).action(
    async (
      flags: Flags & { tenant?: string; scopes: string; name?: string; expires?: string; url?: string; key?: string },
    ) => {
      const scopes = flags.scopes.trim() === "all" ? ["all"] : parseScopes(flags.scopes);
      const expireTime = flags.expires ? parseExpiry(flags.expires) : null;
      if (flags.url) {
        if (flags.tenant)
          throw new ConfigError("--tenant does not apply with --url: keys are created in the tenant of --key");
        const client = keyClient(flags.url, flags.key);
        const res = await client
          .createKey({
            scopes,
            name: flags.name ?? "",
            ...(expireTime ? { expireTime: timestampFromDate(expireTime) } : {}),
          })
          .catch((e: unknown) => Promise.reject(describeRpcError(e)));
        process.stdout.write(`${res.secret}\n`);
        process.stderr.write(
          `key id ${res.key?.id} with scopes ${res.key?.scopes.join(",")}: store it now, it is not shown again\n`,
        );
        return;
      }
      if (!flags.tenant)
        throw new ConfigError("--tenant is required (or --url and --key to create a key in that key's tenant)");
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(flags.tenant)) {
        throw new ConfigError(
          `invalid --tenant ${JSON.stringify(flags.tenant)}: use 1-63 letters, digits, '.', '_' or '-'`,
        );
      }
      const tenantId = flags.tenant;
      const granted = scopes[0] === "all" ? [...SCOPES] : (scopes as Scope[]);
      const created = await withDatabase(configFrom(flags), (sql) =>
        createApiKey(sql, { tenantId, scopes: granted, expireTime, ...(flags.name ? { name: flags.name } : {}) }),
      );
      process.stdout.write(`${created.key}\n`);
      process.stderr.write(
        `key id ${created.info.keyId} for tenant ${tenantId} with scopes ${granted.join(",")}: store it now, it is not shown again\n`,
      );
    },
  );
  addSettingOptions(
    remoteOptions(
      keys
        .command("list")
        .description("List API keys (never the keys themselves).")
        .option("--tenant <tenant>", "Only this tenant's keys."),
    ),
    ["dataDir", "databaseUrl", "logLevel"],
  ).action(async (flags: Flags & { tenant?: string; url?: string; key?: string }) => {
    if (flags.url) {
      const res = await keyClient(flags.url, flags.key)
        .listKeys({})
        .catch((e: unknown) => Promise.reject(describeRpcError(e)));
      for (const k of res.keys) process.stdout.write(`${formatKey(k)}\n`);
      return;
    }
    const list = await withDatabase(configFrom(flags), (sql) => listApiKeys(sql, flags.tenant));
    for (const k of list) {
      const state = k.revokeTime
        ? `revoked ${k.revokeTime.toISOString()}`
        : k.expireTime
          ? `expires ${k.expireTime.toISOString()}`
          : "active";
      process.stdout.write(`${k.keyId}  ${k.tenantId}  ${k.keyPrefix}…  ${k.scopes.join(",")}  ${state}  ${k.name}\n`);
    }
  });
  addSettingOptions(
    remoteOptions(
      keys
        .command("revoke")
        .description("Revoke an API key by its id (see `keys list`).")
        .argument("<key-id>", "The key's id."),
    ),
    ["dataDir", "databaseUrl", "logLevel"],
  ).action(async (keyId: string, flags: Flags & { url?: string; key?: string }) => {
    if (!/^[0-9a-f-]{36}$/i.test(keyId))
      throw new ConfigError(`invalid key id ${JSON.stringify(keyId)}: see \`agentd keys list\``);
    if (flags.url) {
      await keyClient(flags.url, flags.key)
        .revokeKey({ keyId })
        .catch((e: unknown) => Promise.reject(describeRpcError(e)));
      process.stdout.write(`revoked ${keyId}\n`);
      return;
    }
    const revoked = await withDatabase(configFrom(flags), (sql) => revokeApiKey(sql, keyId));
    if (!revoked) throw new ConfigError(`no API key with id ${keyId}`);
    process.stdout.write(`revoked ${keyId} (tenant ${revoked.tenantId})\n`);
  });
}

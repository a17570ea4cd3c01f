// Where a client command connects and with which key: --url / AGENTD_URL and
// --key / AGENTD_API_KEY (settings table), the key defaulting to the dev key
// file that `agentd dev` writes into the data folder.
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type AgentdClient, createClient } from "../../../client/index.js";
import { ConfigError, loadConfig } from "../../shared/config.js";

export interface ConnectionFlags {
  url?: string;
  key?: string;
  data?: string;
  transport?: "grpc" | "connect";
}

export interface Connection {
  url: string;
  client: AgentdClient;
}

export async function connect(
  flags: ConnectionFlags,
  env: Record<string, string | undefined> = process.env,
): Promise<Connection> {
  const config = loadConfig(env, {
    ...(flags.url !== undefined ? { clientUrl: flags.url } : {}),
    ...(flags.key !== undefined ? { clientApiKey: flags.key } : {}),
    ...(flags.data !== undefined ? { dataDir: flags.data } : {}),
  });
  let url: URL;
  try {
    url = new URL(config.clientUrl);
  } catch {
    throw new ConfigError(
      `invalid setting --url / AGENTD_URL=${JSON.stringify(config.clientUrl)}: must be an http:// or https:// URL`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(
      `invalid setting --url / AGENTD_URL=${JSON.stringify(config.clientUrl)}: must be an http:// or https:// URL`,
    );
  }
  const key = config.clientApiKey ?? (await readDevKey(config.dataDir));
  const baseUrl = url.toString().replace(/\/$/, "");
  return {
    url: baseUrl,
    client: createClient({ baseUrl, ...(key ? { key } : {}), transport: flags.transport ?? "grpc" }),
  };
}

async function readDevKey(dataDir: string): Promise<string | undefined> {
  const key = await readFile(join(resolve(dataDir), "dev-api-key"), "utf8").then(
    (k) => k.trim(),
    () => "",
  );
  return key || undefined;
}

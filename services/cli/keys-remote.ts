// `agentd keys … --url URL --key KEY`: the same commands through a running
// server's KeyService (scope keys:manage), for the calling key's tenant.

import { Agent } from "node:http";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { type ApiKey, KeyService } from "../../gen/agentd/v1/key_service_pb.js";
import { ConfigError } from "../shared/config.js";

export function keyClient(url: string, key: string | undefined): Client<typeof KeyService> {
  if (!key) throw new ConfigError("--url needs --key: an API key with scope keys:manage");
  let baseUrl: URL;
  try {
    baseUrl = new URL(url);
  } catch {
    throw new ConfigError(`invalid --url ${JSON.stringify(url)}: expected e.g. http://127.0.0.1:8080`);
  }
  const transport = createConnectTransport({
    baseUrl: baseUrl.toString().replace(/\/$/, ""),
    httpVersion: "1.1",
    // One call and exit: no keep-alive socket may hold the process open.
    nodeOptions: { agent: new Agent({ keepAlive: false }) },
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${key}`);
        return next(req);
      },
    ],
  });
  return createClient(KeyService, transport);
}

/** A server's refusal, as the CLI prints it. */
export function describeRpcError(error: unknown): Error {
  if (error instanceof ConnectError) return new Error(`the server refused: ${error.rawMessage} (${error.code})`);
  return error instanceof Error ? error : new Error(String(error));
}

export function formatKey(k: ApiKey, tenant = ""): string {
  const state = k.revokeTime
    ? `revoked ${timestampDate(k.revokeTime).toISOString()}`
    : k.expireTime
      ? `expires ${timestampDate(k.expireTime).toISOString()}`
      : "active";
  return `${k.id}  ${tenant || "-"}  ${k.prefix}…  ${k.scopes.join(",")}  ${state}  ${k.name}`;
}

/** `--expires`: an RFC 3339 time, or a duration from now such as 90d, 12h, 30m. */
export function parseExpiry(text: string, now = Date.now()): Date {
  const match = /^(\d+)\s*(d|h|m|s)$/.exec(text.trim());
  if (match) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[match[2] as "d" | "h" | "m" | "s"];
    return new Date(now + Number(match[1]) * unit);
  }
  const date = new Date(text);
  if (Number.isNaN(date.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(text)) {
    throw new ConfigError(
      `invalid --expires ${JSON.stringify(text)}: use a duration (90d, 12h, 30m) or a time (2027-01-31T00:00:00Z)`,
    );
  }
  if (date.getTime() <= now) throw new ConfigError(`invalid --expires ${JSON.stringify(text)}: must be in the future`);
  return date;
}

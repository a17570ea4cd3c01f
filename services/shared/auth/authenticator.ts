// Resolves `authorization: Bearer <key>` to a principal. Lookups are cached
// briefly so that a hot client does not cost a query per call; a revoked key
// stops working within `cacheMs` (under the 5 s that KeyService documents), an
// expired one at its expiry.
import type { Sql } from "../db/database.js";
import { type ApiKeyInfo, findActiveApiKey } from "./api-keys.js";
import type { Scope } from "./scopes.js";

export interface Principal {
  tenantId: string;
  keyId: string;
  scopes: ReadonlySet<Scope>;
}

export type Authentication =
  | { ok: true; principal: Principal }
  | { ok: false; reason: "MISSING_CREDENTIALS" | "INVALID_API_KEY"; message: string };

export interface Authenticator {
  authenticate(authorization: string | null): Promise<Authentication>;
}

export function createAuthenticator(sql: Sql, opts: { cacheMs?: number; maxEntries?: number } = {}): Authenticator {
  const cacheMs = opts.cacheMs ?? 4000;
  const maxEntries = opts.maxEntries ?? 10_000;
  const cache = new Map<string, { info: ApiKeyInfo | undefined; until: number }>();

  async function lookup(key: string): Promise<ApiKeyInfo | undefined> {
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && hit.until > now) return hit.info?.expireTime && hit.info.expireTime.getTime() <= now ? undefined : hit.info;
    const info = await findActiveApiKey(sql, key);
    if (cache.size >= maxEntries) cache.clear();
    cache.set(key, { info, until: now + cacheMs });
    return info;
  }

  return {
    async authenticate(authorization) {
      const match = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
      if (!match) {
        return {
          ok: false,
          reason: "MISSING_CREDENTIALS",
          message: "missing API key: send the header `authorization: Bearer <api key>`",
        };
      }
      const info = await lookup(match[1]!);
      if (!info) return { ok: false, reason: "INVALID_API_KEY", message: "the API key is unknown, revoked or expired" };
      return { ok: true, principal: { tenantId: info.tenantId, keyId: info.keyId, scopes: new Set(info.scopes) } };
    },
  };
}

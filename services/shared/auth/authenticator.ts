// Resolves `authorization: Bearer <key>` to a principal. Lookups are cached
// briefly so that a hot client does not cost a query per call; a revoked key
// stops working within `cacheMs` (under the 5 s that KeyService documents), an
// expired one at its expiry.
//
// Streams outlive that check: a stream opened with a key must end once the key
// is revoked. `watch` re-checks each watched key every `watchMs` (default 2 s),
// one lookup per key per interval however many streams use it, through the same
// cache (refreshed when older than the interval), so a stream ends within about
// two intervals of a revocation.
import type { Sql } from "../db/database.js";
import { type ApiKeyInfo, findActiveApiKey } from "./api-keys.js";
import type { Scope } from "./scopes.js";

export interface Principal {
  tenantId: string;
  keyId: string;
  scopes: ReadonlySet<Scope>;
}

export type AuthFailure = { ok: false; reason: "MISSING_CREDENTIALS" | "INVALID_API_KEY"; message: string };

export type Authentication = { ok: true; principal: Principal } | AuthFailure;

export interface Authenticator {
  authenticate(authorization: string | null): Promise<Authentication>;
  /** Calls `onRevoked` (once) when the credentials in `authorization`, valid now, stop
   * authenticating: checked at least every `watchMs`. Returns the function that stops
   * watching; call it when the stream ends. */
  watch(authorization: string, onRevoked: (failure: AuthFailure) => void): () => void;
}

/** What a stream ends with when its key is revoked while it is open. */
export const REVOKED: AuthFailure = {
  ok: false,
  reason: "INVALID_API_KEY",
  message: "the API key was revoked while the stream was open",
};

const BEARER = /^Bearer\s+(\S+)\s*$/i;

export function createAuthenticator(
  sql: Sql,
  opts: { cacheMs?: number; maxEntries?: number; watchMs?: number } = {},
): Authenticator {
  const cacheMs = opts.cacheMs ?? 4000;
  const maxEntries = opts.maxEntries ?? 10_000;
  const watchMs = opts.watchMs ?? 2000;
  const cache = new Map<string, { info: ApiKeyInfo | undefined; fetched: number }>();
  /** Watched keys: one timer per key, shared by its streams. */
  const watched = new Map<string, { listeners: Set<(failure: AuthFailure) => void>; timer: NodeJS.Timeout }>();

  async function lookup(key: string, maxAgeMs = cacheMs): Promise<ApiKeyInfo | undefined> {
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && now - hit.fetched < Math.min(maxAgeMs, cacheMs)) {
      return hit.info?.expireTime && hit.info.expireTime.getTime() <= now ? undefined : hit.info;
    }
    const info = await findActiveApiKey(sql, key);
    if (cache.size >= maxEntries) cache.clear();
    cache.set(key, { info, fetched: now });
    return info;
  }

  async function recheck(key: string): Promise<void> {
    const entry = watched.get(key);
    if (!entry) return;
    let info: ApiKeyInfo | undefined;
    try {
      info = await lookup(key, watchMs);
    } catch {
      return; // the database is unreachable: not a revocation; the next interval checks again
    }
    if (info || watched.get(key) !== entry) return;
    clearInterval(entry.timer);
    watched.delete(key);
    for (const listener of entry.listeners) listener(REVOKED);
  }

  return {
    async authenticate(authorization) {
      const match = authorization ? BEARER.exec(authorization) : null;
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

    watch(authorization, onRevoked) {
      const key = BEARER.exec(authorization)?.[1];
      if (!key) return () => {};
      let entry = watched.get(key);
      if (!entry) {
        const timer = setInterval(() => void recheck(key), watchMs);
        timer.unref();
        entry = { listeners: new Set(), timer };
        watched.set(key, entry);
      }
      let fired = false;
      const listener = (failure: AuthFailure) => {
        if (fired) return;
        fired = true;
        onRevoked(failure);
      };
      entry.listeners.add(listener);
      const mine = entry;
      return () => {
        fired = true;
        mine.listeners.delete(listener);
        if (mine.listeners.size === 0 && watched.get(key) === mine) {
          clearInterval(mine.timer);
          watched.delete(key);
        }
      };
    },
  };
}

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
//
// The credential may also be an access token (access-tokens.ts): checked by its
// signature and expiry, and by its parent key being active (looked up by id through
// the same cache), so revoking the key ends its tokens and their streams alike.
import { createHash } from "node:crypto";
import type { Sql } from "../db/database.js";
import { type AccessTokens, createAccessTokens, databaseAccessTokenKey, isAccessToken } from "./access-tokens.js";
import { findActiveApiKey, findActiveApiKeyById } from "./api-keys.js";
import type { Scope } from "./scopes.js";

export interface Principal {
  tenantId: string;
  keyId: string;
  scopes: ReadonlySet<Scope>;
  /** Set when the caller used an access token: its limits and expiry. */
  token?: { taskIds?: readonly string[]; agents?: readonly string[]; expireTime: Date };
  /** When the API key itself expires (keys may carry an expiry). */
  keyExpireTime?: Date;
}

/** The earlier of two optional times. */
export function earliest(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (!a || !b) return a ?? b;
  return a.getTime() <= b.getTime() ? a : b;
}

export type AuthFailure = {
  ok: false;
  reason: "MISSING_CREDENTIALS" | "INVALID_API_KEY" | "INVALID_ACCESS_TOKEN";
  message: string;
};

export type Authentication = { ok: true; principal: Principal } | AuthFailure;

export interface Authenticator {
  authenticate(authorization: string | null): Promise<Authentication>;
  /** What `authenticate` would answer, when that needs no lookup (no credentials, or a fresh
   * cache entry); undefined otherwise. Lets a hot caller skip a promise and a statement scope. */
  cached?(authorization: string | null): Authentication | undefined;
  /** Calls `onRevoked` (once) when the credentials in `authorization`, valid now, stop
   * authenticating: checked at least every `watchMs`. Returns the function that stops
   * watching; call it when the stream ends. */
  watch(authorization: string, onRevoked: (failure: AuthFailure) => void): () => void;
}

/** What a stream ends with when its key is revoked while it is open. */
const REVOKED: AuthFailure = {
  ok: false,
  reason: "INVALID_API_KEY",
  message: "the API key was revoked while the stream was open",
};

/** What a stream opened with an access token ends with when the token expires. */
const EXPIRED: AuthFailure = {
  ok: false,
  reason: "INVALID_ACCESS_TOKEN",
  message: "the access token expired while the stream was open",
};

const BEARER = /^Bearer\s+(\S+)\s*$/i;

export function createAuthenticator(
  sql: Sql,
  opts: { cacheMs?: number; maxEntries?: number; watchMs?: number; tokens?: AccessTokens } = {},
): Authenticator {
  const cacheMs = opts.cacheMs ?? 3000;
  const maxEntries = opts.maxEntries ?? 10_000;
  const watchMs = opts.watchMs ?? 2000;
  const tokens = opts.tokens ?? createAccessTokens(databaseAccessTokenKey(sql));
  const cache = new Map<string, { info: Principal | undefined; fetched: number }>();
  const inFlight = new Map<string, Promise<Principal | undefined>>();
  /** Watched keys: one timer per key, shared by its streams. */
  const watched = new Map<string, { listeners: Set<(failure: AuthFailure) => void>; timer: NodeJS.Timeout }>();

  /** The principal of an API key or access token; undefined when it does not authenticate. */
  async function resolve(credential: string): Promise<Principal | undefined> {
    if (!isAccessToken(credential)) {
      const info = await findActiveApiKey(sql, credential);
      return (
        info && {
          tenantId: info.tenantId,
          keyId: info.keyId,
          scopes: new Set(info.scopes),
          ...(info.expireTime ? { keyExpireTime: info.expireTime } : {}),
        }
      );
    }
    const claims = await tokens.verify(credential);
    if (!claims) return undefined;
    const parent = await findActiveApiKeyById(sql, claims.keyId);
    if (!parent || parent.tenantId !== claims.tenantId) return undefined;
    return {
      tenantId: claims.tenantId,
      keyId: claims.keyId,
      // Never more than the key has now (its scopes cannot change today, but a token must not outgrow it).
      scopes: new Set(claims.scopes.filter((s) => parent.scopes.includes(s))),
      token: {
        ...(claims.taskIds ? { taskIds: claims.taskIds } : {}),
        ...(claims.agents ? { agents: claims.agents } : {}),
        expireTime: claims.expireTime,
      },
      // The token ends with its key: at the key's expiry when that comes first.
      ...(parent.expireTime ? { keyExpireTime: parent.expireTime } : {}),
    };
  }

  // Tokens run to kilobytes: the cache holds their digest, so that its size stays bounded.
  const cacheKeyOf = (key: string) => (key.length > 64 ? createHash("sha256").update(key).digest("base64") : key);

  /** The cache entry of `cacheKey` while it may still be used, else undefined. */
  function freshEntry(cacheKey: string, now: number, maxAgeMs: number) {
    const hit = cache.get(cacheKey);
    if (!hit || now - hit.fetched >= Math.min(maxAgeMs, cacheMs)) return undefined;
    // A cached key is good only until its expiry, a cached token until its own or its key's.
    const expiry = earliest(hit.info?.token?.expireTime, hit.info?.keyExpireTime);
    return !expiry || expiry.getTime() > now ? hit : undefined;
  }

  async function lookup(key: string, maxAgeMs = cacheMs): Promise<Principal | undefined> {
    const now = Date.now();
    const cacheKey = cacheKeyOf(key);
    const hit = freshEntry(cacheKey, now, maxAgeMs);
    if (hit) return hit.info;
    // Single flight: the calls in flight when an entry expires share one lookup.
    let pending = inFlight.get(cacheKey);
    if (!pending) {
      pending = resolve(key)
        .then((info) => {
          if (cache.size >= maxEntries) cache.clear();
          cache.set(cacheKey, { info, fetched: now });
          return info;
        })
        .finally(() => inFlight.delete(cacheKey));
      inFlight.set(cacheKey, pending);
    }
    return pending;
  }

  async function recheck(key: string): Promise<void> {
    const entry = watched.get(key);
    if (!entry) return;
    let info: Principal | undefined;
    try {
      info = await lookup(key, watchMs);
    } catch {
      return; // the database is unreachable: not a revocation; the next interval checks again
    }
    if (info || watched.get(key) !== entry) return;
    clearInterval(entry.timer);
    watched.delete(key);
    const expired = isAccessToken(key) && (await tokens.verify(key).catch(() => undefined)) === undefined;
    for (const listener of entry.listeners) listener(expired ? EXPIRED : REVOKED);
  }

  return {
    async authenticate(authorization) {
      const match = authorization ? BEARER.exec(authorization) : null;
      if (!match) return missingCredentials();
      const credential = match[1]!;
      return authentication(credential, await lookup(credential));
    },

    cached(authorization) {
      const match = authorization ? BEARER.exec(authorization) : null;
      if (!match) return missingCredentials();
      const credential = match[1]!;
      const hit = freshEntry(cacheKeyOf(credential), Date.now(), cacheMs);
      return hit ? authentication(credential, hit.info) : undefined;
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

function missingCredentials(): AuthFailure {
  return {
    ok: false,
    reason: "MISSING_CREDENTIALS",
    message: "missing API key: send the header `authorization: Bearer <api key>`",
  };
}

/** The answer for `credential`, given what it resolved to. */
function authentication(credential: string, principal: Principal | undefined): Authentication {
  if (principal) return { ok: true, principal };
  return isAccessToken(credential)
    ? {
        ok: false,
        reason: "INVALID_ACCESS_TOKEN",
        message: "the access token is invalid or expired, or its API key was revoked",
      }
    : { ok: false, reason: "INVALID_API_KEY", message: "the API key is unknown, revoked or expired" };
}

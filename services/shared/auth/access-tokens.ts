// Access tokens: short-lived credentials a backend mints from an API key for a browser.
// They are HS256 JWTs signed with `jose` under a key kept in deployment_secrets
// (migration 0007), so every replica checks them without a lookup of the token and
// nothing about a token is stored. What a signature cannot say — whether the parent
// key was revoked since — the authenticator checks against the key by its id, with
// the same cache as keys (services/shared/auth/authenticator.ts).
// Why signed, not stored hashed like keys: tokens are minted often (one per page
// view), live minutes and need no listing or revoking one by one (revoking the key
// ends them all), so a table of them would only grow; a signature also keeps the
// check to one cached key lookup however many tokens a key has minted.
import { createHash } from "node:crypto";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { Sql } from "../db/database.js";
import { isScope, type Scope } from "./scopes.js";

interface AccessTokenClaims {
  tenantId: string;
  /** The API key it derives from: revoking that key ends the token. */
  keyId: string;
  scopes: Scope[];
  /** Only these tasks are visible; undefined: no limit. */
  taskIds?: string[];
  /** Only these agents may be run; undefined: no limit. */
  agents?: string[];
  expireTime: Date;
}

export interface AccessTokens {
  mint(claims: AccessTokenClaims): Promise<string>;
  /** The token's claims, or undefined when it is malformed, forged or expired. */
  verify(token: string): Promise<AccessTokenClaims | undefined>;
}

const ISSUER = "agentd";
const AUDIENCE = "agentd";
const JWT_SHAPE = /^[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** Longest token accepted (a token limited to 100 tasks and agents is about 9 KB). */
const MAX_TOKEN_CHARS = 16_384;

/** Whether a bearer credential is shaped like an access token (a key starts with `agentd_`). */
export function isAccessToken(credential: string): boolean {
  return credential.length <= MAX_TOKEN_CHARS && JWT_SHAPE.test(credential);
}

export function createAccessTokens(key: () => Promise<Uint8Array>): AccessTokens {
  return {
    async mint(claims) {
      return new SignJWT({
        tid: claims.tenantId,
        scp: claims.scopes,
        ...(claims.taskIds ? { tsk: claims.taskIds } : {}),
        ...(claims.agents ? { agt: claims.agents } : {}),
      })
        .setProtectedHeader({ alg: "HS256", typ: "at+jwt" })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(claims.keyId)
        .setIssuedAt()
        .setExpirationTime(Math.floor(claims.expireTime.getTime() / 1000))
        .sign(await key());
    },

    async verify(token) {
      if (!isAccessToken(token)) return undefined;
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(token, await key(), {
          algorithms: ["HS256"],
          issuer: ISSUER,
          audience: AUDIENCE,
          typ: "at+jwt",
        }));
      } catch (error) {
        if (error instanceof joseErrors.JOSEError) return undefined; // forged, malformed or expired
        throw error;
      }
      const { tid, sub, scp, tsk, agt, exp } = payload;
      const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
      if (typeof tid !== "string" || typeof sub !== "string" || !strings(scp) || typeof exp !== "number")
        return undefined;
      if ((tsk !== undefined && !strings(tsk)) || (agt !== undefined && !strings(agt))) return undefined;
      return {
        tenantId: tid,
        keyId: sub,
        scopes: scp.filter(isScope),
        ...(tsk ? { taskIds: tsk } : {}),
        ...(agt ? { agents: agt } : {}),
        expireTime: new Date(exp * 1000),
      };
    },
  };
}

/** The signing key, derived from the deployment secret `access_token` (read once). */
export function databaseAccessTokenKey(sql: Sql): () => Promise<Uint8Array> {
  let key: Promise<Uint8Array> | undefined;
  return () => {
    key ??= (async () => {
      const [row] = await sql<{ secret: string }[]>`SELECT secret FROM deployment_secrets WHERE name = 'access_token'`;
      if (!row) throw new Error("deployment_secrets has no access_token row: run the migrations");
      return new Uint8Array(createHash("sha256").update(`agentd access-token key\n${row.secret}`).digest());
    })();
    // A failed read (database down) is tried again on the next call.
    key.catch(() => {
      key = undefined;
    });
    return key;
  };
}

// API keys: created once and shown once; only their SHA-256 is stored.
import { createHash, randomBytes } from "node:crypto";
import type { Sql } from "../db/database.js";
import { newId } from "../ids.js";
import type { Scope } from "./scopes.js";

const KEY_PREFIX = "agentd_";

export interface ApiKeyInfo {
  tenantId: string;
  keyId: string;
  keyPrefix: string;
  name: string;
  scopes: Scope[];
  createTime: Date;
  revokeTime: Date | null;
  /** When the key stops working by itself; null: never. */
  expireTime: Date | null;
}

function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

async function ensureTenant(sql: Sql, tenantId: string): Promise<void> {
  await sql`INSERT INTO tenants (tenant_id) VALUES (${tenantId}) ON CONFLICT DO NOTHING`;
}

/** Creates a key for the tenant (creating the tenant if new). The returned key is never stored. */
export async function createApiKey(
  sql: Sql,
  opts: { tenantId: string; scopes: Scope[]; name?: string; expireTime?: Date | null },
): Promise<{ key: string; info: ApiKeyInfo }> {
  const key = KEY_PREFIX + randomBytes(24).toString("base64url");
  const keyId = newId();
  const keyPrefix = key.slice(0, KEY_PREFIX.length + 6);
  await ensureTenant(sql, opts.tenantId);
  const [row] = await sql<{ create_time: Date }[]>`
    INSERT INTO api_keys (tenant_id, key_id, key_hash, key_prefix, name, scopes, expire_time)
    VALUES (${opts.tenantId}, ${keyId}, ${hashApiKey(key)}, ${keyPrefix}, ${opts.name ?? ""}, ${opts.scopes}::text[], ${opts.expireTime ?? null})
    RETURNING create_time
  `;
  return {
    key,
    info: {
      tenantId: opts.tenantId,
      keyId,
      keyPrefix,
      name: opts.name ?? "",
      scopes: opts.scopes,
      createTime: row!.create_time,
      revokeTime: null,
      expireTime: opts.expireTime ?? null,
    },
  };
}

interface KeyRow {
  tenant_id: string;
  key_id: string;
  key_prefix: string;
  name: string;
  scopes: Scope[];
  create_time: Date;
  revoke_time: Date | null;
  expire_time: Date | null;
}

const toInfo = (r: KeyRow): ApiKeyInfo => ({
  tenantId: r.tenant_id,
  keyId: r.key_id,
  keyPrefix: r.key_prefix,
  name: r.name,
  scopes: r.scopes,
  createTime: r.create_time,
  revokeTime: r.revoke_time,
  expireTime: r.expire_time,
});

export async function listApiKeys(sql: Sql, tenantId?: string): Promise<ApiKeyInfo[]> {
  const rows = await sql<KeyRow[]>`
    SELECT tenant_id, key_id, key_prefix, name, scopes, create_time, revoke_time, expire_time FROM api_keys
    ${tenantId ? sql`WHERE tenant_id = ${tenantId}` : sql``}
    ORDER BY tenant_id, create_time
  `;
  return rows.map(toInfo);
}

/** Revokes by key id (within `tenantId` when given); returns the key, or undefined when no such key exists. */
export async function revokeApiKey(sql: Sql, keyId: string, tenantId?: string): Promise<ApiKeyInfo | undefined> {
  const [row] = await sql<KeyRow[]>`
    UPDATE api_keys SET revoke_time = coalesce(revoke_time, now())
    WHERE key_id = ${keyId}::uuid ${tenantId ? sql`AND tenant_id = ${tenantId}` : sql``}
    RETURNING tenant_id, key_id, key_prefix, name, scopes, create_time, revoke_time, expire_time
  `;
  return row ? toInfo(row) : undefined;
}

/** The active (neither revoked nor expired) key with this secret, if any. */
export async function findActiveApiKey(sql: Sql, key: string): Promise<ApiKeyInfo | undefined> {
  if (!key.startsWith(KEY_PREFIX) || key.length > 200) return undefined;
  const [row] = await sql<KeyRow[]>`
    SELECT tenant_id, key_id, key_prefix, name, scopes, create_time, revoke_time, expire_time FROM api_keys
    WHERE key_hash = ${hashApiKey(key)} AND revoke_time IS NULL AND (expire_time IS NULL OR expire_time > now())
  `;
  return row ? toInfo(row) : undefined;
}

/**
 * The active (neither revoked nor expired) key with this id, if any: the parent of an access
 * token, which ends with it — a token never outlives the key it was minted from.
 */
export async function findActiveApiKeyById(sql: Sql, keyId: string): Promise<ApiKeyInfo | undefined> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(keyId)) return undefined;
  const [row] = await sql<KeyRow[]>`
    SELECT tenant_id, key_id, key_prefix, name, scopes, create_time, revoke_time, expire_time FROM api_keys
    WHERE key_id = ${keyId}::uuid AND revoke_time IS NULL AND (expire_time IS NULL OR expire_time > now())
  `;
  return row ? toInfo(row) : undefined;
}

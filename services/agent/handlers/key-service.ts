// KeyService at the edge: API keys of the caller's tenant while the server runs
// (scope keys:manage). Only hashes are stored; a new key is shown once.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { type ApiKey, ApiKeySchema, KeyService } from "../../../gen/agentd/v1/key_service_pb.js";
import { type ApiKeyInfo, createApiKey, listApiKeys, revokeApiKey } from "../../shared/auth/api-keys.js";
import { isScope, type Scope } from "../../shared/auth/scopes.js";
import type { Sql } from "../../shared/db/database.js";
import { invalidArgument, notFound, rpcError } from "../../shared/errors.js";
import { isId } from "../../shared/ids.js";
import { principalOf } from "./interceptors.js";
import { Violations } from "./request-fields.js";

const MAX_NAME = 200;

function toApiKey(info: ApiKeyInfo): ApiKey {
  return create(ApiKeySchema, {
    id: info.keyId,
    prefix: info.keyPrefix,
    name: info.name,
    scopes: info.scopes,
    createTime: timestampFromDate(info.createTime),
    ...(info.revokeTime ? { revokeTime: timestampFromDate(info.revokeTime) } : {}),
    ...(info.expireTime ? { expireTime: timestampFromDate(info.expireTime) } : {}),
  });
}

/** The scopes asked for; `all` means every scope the caller holds. */
function parseRequestedScopes(v: Violations, requested: string[], held: ReadonlySet<Scope>): Scope[] {
  if (requested.length === 1 && requested[0] === "all") return [...held];
  if (requested.length === 0) v.add("scopes", "must name at least one scope, or `all`");
  const scopes: Scope[] = [];
  requested.forEach((s, i) => {
    if (isScope(s)) scopes.push(s);
    else v.add(`scopes[${i}]`, `is not a scope (${JSON.stringify(s.slice(0, 40))})`);
  });
  return [...new Set(scopes)];
}

export function keyServiceRoutes(deps: { sql: Sql }) {
  const { sql } = deps;
  return (router: ConnectRouter) =>
    router.service(KeyService, {
      async createKey(req, ctx) {
        const caller = principalOf(ctx);
        // A key outlives any token (no expiry, no task or agent limit): a token minting one
        // would widen itself, so only an API key creates keys, whatever the token's scopes.
        if (caller.token) {
          throw rpcError(
            Code.PermissionDenied,
            "TOKEN_CANNOT_CREATE_KEYS",
            "an access token cannot create API keys: call with an API key",
          );
        }
        const v = new Violations();
        const scopes = parseRequestedScopes(v, req.scopes, caller.scopes);
        if (req.name.length > MAX_NAME) v.add("name", `must be at most ${MAX_NAME} characters`);
        const expireTime = req.expireTime ? timestampDate(req.expireTime) : null;
        if (expireTime && expireTime.getTime() <= Date.now()) v.add("expire_time", "must be in the future");
        v.throwIfAny();
        // A key cannot hand out more than it holds.
        const notHeld = scopes.filter((s) => !caller.scopes.has(s));
        if (notHeld.length > 0) {
          throw rpcError(
            Code.PermissionDenied,
            "SCOPE_NOT_HELD",
            `the calling key does not hold scope ${notHeld.join(", ")}`,
            {
              metadata: { scopes: notHeld.join(",") },
            },
          );
        }
        const created = await createApiKey(sql, { tenantId: caller.tenantId, scopes, name: req.name, expireTime });
        return { key: toApiKey(created.info), secret: created.key };
      },

      async listKeys(_req, ctx) {
        const keys = await listApiKeys(sql, principalOf(ctx).tenantId);
        return { keys: keys.map(toApiKey) };
      },

      async revokeKey(req, ctx) {
        const { tenantId } = principalOf(ctx);
        if (req.keyId === "") throw invalidArgument([{ field: "key_id", description: "is required" }]);
        if (!isId(req.keyId)) throw notFound("key", req.keyId);
        const revoked = await revokeApiKey(sql, req.keyId.toLowerCase(), tenantId);
        if (!revoked) throw notFound("key", req.keyId);
        return { key: toApiKey(revoked) };
      },
    });
}

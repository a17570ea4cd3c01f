// AuthService at the edge: CreateAccessToken mints a short-lived token for a browser
// from the caller's key (or token), never wider than the caller (access-tokens.ts).
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { AuthService } from "../../../gen/agentd/v1/auth_service_pb.js";
import type { AccessTokens } from "../../shared/auth/access-tokens.js";
import { earliest, type Principal } from "../../shared/auth/authenticator.js";
import { isScope, type Scope } from "../../shared/auth/scopes.js";
import { rpcError } from "../../shared/errors.js";
import { isId } from "../../shared/ids.js";
import { principalOf } from "./interceptors.js";
import { durationMs, Violations } from "./request-fields.js";

const DEFAULT_TOKEN_TTL_MS = 15 * 60_000;
const MAX_TOKEN_TTL_MS = 24 * 3_600_000;
const MAX_LIMIT_ITEMS = 100;

function widening(what: string): never {
  throw rpcError(
    Code.PermissionDenied,
    "TOKEN_WIDENING",
    `a token cannot be wider than the credentials that mint it: ${what}`,
  );
}

/** `requested` if it stays within `own` (undefined: no limit), else TOKEN_WIDENING; empty inherits `own`. */
function narrow(requested: string[], own: readonly string[] | undefined, what: string): string[] | undefined {
  if (requested.length === 0) return own ? [...own] : undefined;
  const outside = own ? requested.filter((x) => !own.includes(x)) : [];
  if (outside.length > 0) widening(`${what} ${outside.slice(0, 5).join(", ")} outside the caller's own`);
  return [...new Set(requested)];
}

export function authServiceRoutes(tokens: AccessTokens) {
  return (router: ConnectRouter) =>
    router.service(AuthService, {
      async createAccessToken(req, ctx) {
        const caller: Principal = principalOf(ctx);
        const v = new Violations();
        req.scopes.forEach((s, i) => {
          if (!isScope(s)) v.add(`scopes[${i}]`, `unknown scope "${s}"`);
        });
        req.taskIds.forEach((id, i) => {
          if (!isId(id)) v.add(`task_ids[${i}]`, "is not a task id");
        });
        req.agents.forEach((a, i) => {
          if (a === "") v.add(`agents[${i}]`, "is empty");
        });
        if (req.taskIds.length > MAX_LIMIT_ITEMS) v.add("task_ids", `at most ${MAX_LIMIT_ITEMS}`);
        if (req.agents.length > MAX_LIMIT_ITEMS) v.add("agents", `at most ${MAX_LIMIT_ITEMS}`);
        const ttlMs = req.ttl ? durationMs(req.ttl) : DEFAULT_TOKEN_TTL_MS;
        if (ttlMs <= 0) v.add("ttl", "must be positive");
        else if (ttlMs > MAX_TOKEN_TTL_MS) v.add("ttl", "must be at most 24h");
        v.throwIfAny();

        const own = [...caller.scopes];
        const scopes = (req.scopes.length === 0 ? own : [...new Set(req.scopes)]) as Scope[];
        const extra = scopes.filter((s) => !caller.scopes.has(s));
        if (extra.length > 0) widening(`scope ${extra.join(", ")}`);
        const taskIds = narrow(
          req.taskIds.map((id) => id.toLowerCase()),
          caller.token?.taskIds,
          "task",
        );
        const agents = narrow(req.agents, caller.token?.agents, "agent");
        let expireTime = new Date(Date.now() + ttlMs);
        // Never past the calling token's expiry, nor past the expiry of the key it all derives from.
        const ownExpiry = earliest(caller.token?.expireTime, caller.keyExpireTime);
        if (ownExpiry && expireTime > ownExpiry) {
          if (req.ttl) widening("ttl past the caller's own expiry");
          expireTime = ownExpiry;
        }
        const accessToken = await tokens.mint({
          tenantId: caller.tenantId,
          keyId: caller.keyId,
          scopes,
          ...(taskIds ? { taskIds } : {}),
          ...(agents ? { agents } : {}),
          expireTime,
        });
        return {
          accessToken,
          expireTime: timestampFromDate(expireTime),
          scopes,
          taskIds: taskIds ?? [],
          agents: agents ?? [],
        };
      },
    });
}

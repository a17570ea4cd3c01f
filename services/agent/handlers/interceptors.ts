// The edge of every RPC: request ids, authentication and scopes, and the
// mapping of unexpected failures to the right code (wire/errors.ts: a database
// outage is UNAVAILABLE, never INTERNAL; a bug is INTERNAL with the request id, logged).
import { randomUUID } from "node:crypto";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import type { Authentication, Authenticator, Principal } from "../../shared/auth/authenticator.js";
import { RevocationWatch } from "../../shared/auth/revocation.js";
import { SCOPES, type Scope } from "../../shared/auth/scopes.js";
import { withStatementDeadline } from "../../shared/db/statement-deadline.js";
import { invalidArgument, rpcError } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";
import { principalKey, requestIdKey } from "../model/request-context.js";
import { ResponseStream } from "../streams/response-stream.js";
import { toWireError } from "../wire/errors.js";
import { checkMessage, type RequestCheckLimits } from "./request-check.js";

/** The caller's authentication, when it was made from the headers before the body was read. */
const earlyAuthenticationKey = createContextKey<Authentication | undefined>(undefined, {
  description: "authentication before the body",
});

/** Why authenticating from the headers failed (the database did not answer): the interceptor answers with it. */
const earlyFailureKey = createContextKey<{ error: unknown } | undefined>(undefined, {
  description: "authentication failure before the body",
});

/** The scopes that allow each RPC (any one suffices). Services not listed are open (health, reflection). */
const REQUIRED_SCOPES: Record<string, readonly Scope[]> = {
  "agentd.v1.AgentService/ListAgents": ["agents:run", "tasks:read"],
  "agentd.v1.AgentService/GetAgent": ["agents:run", "tasks:read"],
  "agentd.v1.AgentService/Run": ["agents:run"],
  "agentd.v1.AgentService/RunStream": ["agents:run"],
  "agentd.v1.AgentService/Converse": ["agents:run"],
  "agentd.v1.TaskService/CreateTask": ["tasks:write"],
  "agentd.v1.TaskService/GetTask": ["tasks:read"],
  "agentd.v1.TaskService/ListTasks": ["tasks:read"],
  "agentd.v1.TaskService/WaitTask": ["tasks:read"],
  "agentd.v1.TaskService/CancelTask": ["tasks:write"],
  "agentd.v1.TaskService/DeleteTask": ["tasks:write"],
  "agentd.v1.TaskService/ProvideInput": ["tasks:write"],
  "agentd.v1.TaskService/WatchTask": ["tasks:read"],
  "agentd.v1.TaskService/ListTaskEvents": ["tasks:read"],
  // Any key or token may mint a (never wider) access token.
  "agentd.v1.AuthService/CreateAccessToken": SCOPES,
};

function scopesOf(service: string, method: string): readonly Scope[] | undefined {
  if (service.startsWith("agentd.v1.WebhookService")) return ["webhooks:manage"];
  if (service === "agentd.v1.KeyService") return ["keys:manage"];
  return REQUIRED_SCOPES[`${service}/${method}`];
}

/** scopesOf by service and method name, remembered (null: open); names come from the route table, so few. */
const scopesByService = new Map<string, Map<string, readonly Scope[] | null>>();

function requiredScopes(service: string, method: string): readonly Scope[] | undefined {
  let byMethod = scopesByService.get(service);
  let scopes = byMethod?.get(method);
  if (scopes === undefined) {
    scopes = scopesOf(service, method) ?? null;
    if (!byMethod && scopesByService.size < 100) {
      byMethod = new Map();
      scopesByService.set(service, byMethod);
    }
    if (byMethod && byMethod.size < 100) byMethod.set(method, scopes);
  }
  return scopes ?? undefined;
}

/** The caller of an authenticated RPC. */
export function principalOf(ctx: HandlerContext): Principal {
  const principal = ctx.values.get(principalKey);
  if (!principal) throw new ConnectError("not authenticated", Code.Unauthenticated);
  return principal;
}

export function authInterceptor(auth: Authenticator): Interceptor {
  return (next) => (req) => {
    const scopes = requiredScopes(req.service.typeName, req.method.name);
    if (scopes === undefined) {
      if (req.service.typeName.startsWith("agentd.")) {
        return Promise.reject(
          rpcError(Code.PermissionDenied, "NO_SCOPE", `${req.method.name} is not open to any API key`),
        );
      }
      return next(req);
    }
    // A lookup that already failed before the body is not tried again: the call would wait twice.
    const early = req.contextValues.get(earlyFailureKey);
    if (early) return Promise.reject(early.error);
    const known = req.contextValues.get(earlyAuthenticationKey);
    // Authenticated before the body (every call of the servers): no await before the handler.
    if (known && !req.stream) {
      try {
        authorize(req, scopes, known);
      } catch (error) {
        return Promise.reject(error);
      }
      return next(req);
    }
    return authorizedCall(auth, next, req, scopes, known);
  };
}

async function authorizedCall(
  auth: Authenticator,
  next: Parameters<Interceptor>[0],
  req: Parameters<ReturnType<Interceptor>>[0],
  scopes: readonly Scope[],
  known: Authentication | undefined,
) {
  authorize(req, scopes, known ?? (await auth.authenticate(req.header.get("authorization"))));
  const res = await next(req);
  // A stream outlives its authentication: it ends once its key is revoked.
  if (!res.stream) return res;
  const watch = new RevocationWatch(auth, req.header.get("authorization") ?? "");
  return { ...res, message: ResponseStream.withInterrupter(res.message, watch) };
}

/** Puts the principal of `result` in the call's context, or throws why the call may not proceed. */
function authorize(
  req: { method: { name: string }; contextValues: ContextValues },
  scopes: readonly Scope[],
  result: Authentication,
): void {
  if (!result.ok) throw rpcError(Code.Unauthenticated, result.reason, result.message);
  const { principal } = result;
  if (!scopes.some((s) => principal.scopes.has(s))) {
    throw rpcError(
      Code.PermissionDenied,
      "MISSING_SCOPE",
      `${req.method.name} needs an API key with scope ${scopes.join(" or ")}`,
      { metadata: { required: scopes.join(",") } },
    );
  }
  req.contextValues.set(principalKey, principal);
}

/** Checks every request message (request-check.ts) before the handler runs; bad input is
 * INVALID_ARGUMENT. Client and bidi streams (Converse) check each message in the handler, so
 * that a bad message is answered with a rejection instead of ending the call. Runs after
 * authentication: an unauthenticated caller learns nothing about its input. */
export function inputInterceptor(limits: RequestCheckLimits): Interceptor {
  const check = (desc: Parameters<typeof checkMessage>[0], message: object) => {
    const violations = checkMessage(desc, message, limits);
    if (violations.length > 0) throw invalidArgument(violations);
  };
  return (next) => (req) => {
    if (!req.stream) {
      try {
        check(req.method.input, req.message);
      } catch (error) {
        return Promise.reject(error);
      }
      return next(req);
    }
    if (req.method.methodKind !== "server_streaming") return next(req);
    const messages = req.message;
    return next({
      ...req,
      message: (async function* () {
        for await (const message of messages) {
          check(req.method.input, message);
          yield message;
        }
      })(),
    });
  };
}

/** A client's x-request-id is echoed and logged: only short ids of safe characters are kept. */
const REQUEST_ID = /^[A-Za-z0-9._:/+=-]{1,128}$/;

function requestIdOf(header: string | null): string {
  return header && REQUEST_ID.test(header) ? header : randomUUID();
}

/** For the RPC handler's `beforeBody`: authenticates from the headers alone, so that a request
 * without a valid key is refused without reading (or buffering) its body. The result is kept for
 * `authInterceptor`, which then answers in the protocol's form. A failed lookup (database down)
 * is kept for the interceptor too, which answers with it (UNAVAILABLE) after the body. */
export function authenticateBeforeBody(auth: Authenticator, statementTimeoutMs = 0) {
  return (
    req: { headers: Record<string, string | string[] | undefined> },
    rpc: { service: string; method: string },
    values: ContextValues,
  ): Promise<{ readBody: boolean }> => {
    if (requiredScopes(rpc.service, rpc.method) === undefined) return Promise.resolve({ readBody: true });
    const header = req.headers.authorization;
    const authorization = typeof header === "string" ? header : null;
    // Most calls find their key in the authenticator's cache: answered without a lookup.
    const cached = auth.cached?.(authorization);
    if (cached) {
      values.set(earlyAuthenticationKey, cached);
      return Promise.resolve({ readBody: cached.ok });
    }
    return lookUpBeforeBody(auth, authorization, statementTimeoutMs, values);
  };
}

async function lookUpBeforeBody(
  auth: Authenticator,
  authorization: string | null,
  statementTimeoutMs: number,
  values: ContextValues,
): Promise<{ readBody: boolean }> {
  let result: Authentication;
  try {
    // Outside the interceptors, so the call's statement deadline is set here too.
    result = await withStatementDeadline(statementTimeoutMs, () => auth.authenticate(authorization));
  } catch (error) {
    values.set(earlyFailureKey, { error });
    return { readBody: true };
  }
  values.set(earlyAuthenticationKey, result);
  return { readBody: result.ok };
}

/** The error the client gets (wire/errors.ts), logged as what it is. The call's logger is made
 * only when something is logged: a pino child per call cost more than the rest of the edge. */
type Rpc = { service: { typeName: string }; method: { name: string } };

function mapError(error: unknown, logger: Logger, requestId: string, req: Rpc): ConnectError {
  const wire = toWireError(error, { requestId });
  const log = () => logger.child({ requestId, rpc: `${req.service.typeName}/${req.method.name}` });
  if (error instanceof ConnectError) {
    if (error.code === Code.Internal || error.code === Code.Unknown) log().error({ err: error }, "rpc failed");
  } else if (wire.code === Code.Aborted) log().warn({ err: error }, "transaction conflict");
  else if (wire.code === Code.Unavailable) log().warn({ err: error }, "database unavailable");
  else log().error({ err: error }, "rpc failed unexpectedly");
  return wire;
}

export function edgeInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = requestIdOf(req.header.get("x-request-id"));
    req.contextValues.set(requestIdKey, requestId);
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      if (!res.stream) return res;
      const errors = new StreamErrors(logger, requestId, req.service, req.method);
      return { ...res, message: ResponseStream.withErrorMapping(res.message, errors) };
    } catch (error) {
      const mapped = mapError(error, logger, requestId, req);
      mapped.metadata.set("x-request-id", requestId);
      throw mapped;
    }
  };
}

/** A response stream's errors, mapped as the call's (`mapError`): a part of the stream's one
 * wrapper (ResponseStream), which keeps the service and method, not the whole request. */
class StreamErrors implements Rpc {
  constructor(
    private readonly logger: Logger,
    private readonly requestId: string,
    readonly service: Rpc["service"],
    readonly method: Rpc["method"],
  ) {}

  map(error: unknown): ConnectError {
    return mapError(error, this.logger, this.requestId, this);
  }
}

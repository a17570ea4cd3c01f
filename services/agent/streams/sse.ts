// Server-Sent Events for browsers and plain HTTP clients, on the same port as the RPCs:
//
//   GET /v1/tasks/{task_id}/events[?after_sequence=N]
//   authorization: Bearer <api key>      (scope tasks:read)
//   Last-Event-ID: N                     (sent by EventSource on reconnect; wins over the query)
//
// Each event: `id:` its sequence, `event:` its kind (the `TaskEvent.event` field name:
// state_change, progress, delta, tool_call, input_request, artifact, log), `data:` the
// proto3 JSON of the TaskEvent, exactly as WatchTask would send it. `: keep-alive`
// comments while nothing happens. The response ends after the terminal event; a
// reconnect from there gets 204 No Content, which tells EventSource to stop
// reconnecting. Errors before the stream starts are JSON bodies
// {code, message, reason} with the HTTP status of their gRPC code: 400, 401, 403,
// 404, 405, 429 (with Retry-After), 503.
import { Code, ConnectError } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import type { Authenticator, AuthFailure } from "../../shared/auth/authenticator.js";
import type { Sql } from "../../shared/db/database.js";
import { withStatementDeadline } from "../../shared/db/statement-deadline.js";
import { parseId } from "../../shared/ids.js";
import type { Logger } from "../../shared/log.js";
import { isTerminal } from "../model/task.js";
import { findTask } from "../store/find-task.js";
import { connectCodeName, reasonOf, toWireError } from "../wire/errors.js";
import { sseFrame } from "../wire/event-forms.js";
import type { EventHub } from "./event-hub.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";
import { connectionOf, type StreamLimits } from "./stream-limits.js";

const PATH = /^\/v1\/tasks\/([^/]+)\/events\/?$/;
/** What EventSource waits before reconnecting after a cut (its default is about 3 s). */
const RETRY_MS = 1000;

const HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404,
  [Code.ResourceExhausted]: 429,
  [Code.Unavailable]: 503,
};

function sendError(
  res: NodeResponse,
  status: number,
  code: string,
  reason: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({ code, message, reason });
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

/** `error` as a JSON body; with `retryAfter`, its RetryInfo (if any) as Retry-After. */
function sendConnectError(res: NodeResponse, error: ConnectError, retryAfter = true): void {
  const retry = retryAfter ? error.findDetails(RetryInfoSchema)[0]?.retryDelay : undefined;
  const headers: Record<string, string> = retry
    ? { "retry-after": String(Math.max(1, Math.ceil(Number(retry.seconds) + retry.nanos / 1e9))) }
    : {};
  sendError(
    res,
    HTTP_STATUS[error.code] ?? 500,
    connectCodeName(error.code),
    reasonOf(error),
    error.rawMessage,
    headers,
  );
}

/** The resume cursor: Last-Event-ID (an EventSource reconnecting) or ?after_sequence=. */
function parseCursor(req: NodeRequest, url: URL): { after: number } | { problem: string } {
  const header = req.headers["last-event-id"];
  const fromHeader = Array.isArray(header) ? header[0] : header;
  const raw =
    fromHeader !== undefined && fromHeader.trim() !== "" ? fromHeader.trim() : url.searchParams.get("after_sequence");
  const field = fromHeader !== undefined && fromHeader.trim() !== "" ? "Last-Event-ID" : "after_sequence";
  if (raw === null || raw === "") return { after: 0 };
  if (/^-\d+$/.test(raw)) return { problem: `${field} must not be negative` };
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw)))
    return { problem: `${field} must be a whole number (an event sequence)` };
  return { after: Number(raw) };
}

/**
 * The request-target as a URL, or undefined if it is not origin-form ("/path?query"). Parsed
 * as a path on a fixed origin, so that "//x" stays a path instead of naming a host.
 */
function requestUrl(target: string | undefined): URL | undefined {
  if (target === undefined || !target.startsWith("/")) return undefined;
  try {
    return new URL(`http://localhost${target}`);
  } catch {
    return undefined;
  }
}

/** A percent-decoded path segment; undefined when the encoding is malformed (e.g. "%ZZ"). */
function decodePathSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

export interface SseDeps {
  sql: Sql;
  hub: EventHub;
  limits: StreamLimits;
  auth: Authenticator;
  logger: Logger;
  /** AGENTD_DB_STATEMENT_TIMEOUT_MS, for the look-ups before the stream starts (0: unbounded). */
  statementTimeoutMs?: number;
}

/** Handles `GET /v1/tasks/{id}/events`; returns false for any other path. */
export function createSseHandler(deps: SseDeps): (req: NodeRequest, res: NodeResponse) => boolean {
  return (req, res) => {
    const url = requestUrl(req.url);
    const match = url && PATH.exec(url.pathname);
    if (!url || !match) return false;
    const taskId = decodePathSegment(match[1]!);
    if (taskId === undefined) {
      sendError(
        res,
        400,
        "invalid_argument",
        "INVALID_ARGUMENT",
        "the task id in the path is not valid percent-encoding",
      );
      return true;
    }
    serve(req, res, taskId, url).catch((error: unknown) => {
      deps.logger.warn({ err: error }, "SSE stream failed");
      if (!res.headersSent) {
        // Without Retry-After: this 503 never carried one (RetryInfo is for RPC clients).
        sendConnectError(res, toWireError(error), false);
      } else {
        res.end();
      }
    });
    return true;
  };

  async function serve(req: NodeRequest, res: NodeResponse, taskId: string, url: URL): Promise<void> {
    if (req.method !== "GET") {
      sendError(res, 405, "unimplemented", "METHOD_NOT_ALLOWED", "use GET", { allow: "GET" });
      return;
    }
    const authorization = req.headers.authorization;
    // The look-ups before the stream answer 503 within the statement deadline when the database
    // does not answer; the stream itself is not bounded (the hub's tail retries on its own).
    const bounded = <T>(fn: () => Promise<T>) => withStatementDeadline(deps.statementTimeoutMs ?? 0, fn);
    const auth = await bounded(() => deps.auth.authenticate(typeof authorization === "string" ? authorization : null));
    if (!auth.ok) {
      sendError(res, 401, "unauthenticated", auth.reason, auth.message, { "www-authenticate": "Bearer" });
      return;
    }
    const { principal } = auth;
    if (!principal.scopes.has("tasks:read")) {
      sendError(res, 403, "permission_denied", "MISSING_SCOPE", "task events need an API key with scope tasks:read");
      return;
    }
    const cursor = parseCursor(req, url);
    if ("problem" in cursor) {
      sendError(res, 400, "invalid_argument", "INVALID_ARGUMENT", cursor.problem);
      return;
    }
    const notFound = () => sendError(res, 404, "not_found", "TASK_NOT_FOUND", `task "${taskId}" not found`);
    const id = parseId(taskId);
    if (id === null) return notFound();
    // An access token limited to tasks sees only those (token-limits.ts).
    if (principal.token?.taskIds && !principal.token.taskIds.includes(id)) return notFound();
    const task = await bounded(() => findTask(deps.sql, { tenantId: principal.tenantId, taskId: id }));
    if (!task) return notFound();
    if (isTerminal(task.state) && cursor.after >= Number(task.last_sequence)) {
      // Everything was sent: 204 tells EventSource not to reconnect.
      res.writeHead(204);
      res.end();
      return;
    }
    let slot: ReturnType<StreamLimits["admit"]>;
    try {
      slot = deps.limits.admit("sse", principal.tenantId, connectionOf(req as { socket: object }));
    } catch (error) {
      if (error instanceof ConnectError) return sendConnectError(res, error);
      throw error;
    }

    const closed = new AbortController();
    res.once("close", () => closed.abort());
    // The watch ends when the client goes away, or when the key is revoked (then a final `error` event).
    const ending = new AbortController();
    closed.signal.addEventListener("abort", () => ending.abort(), { once: true });
    let revoked: AuthFailure | undefined;
    const unwatch = deps.auth.watch(String(authorization), (failure) => {
      revoked = failure;
      ending.abort();
    });
    try {
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        // Proxies such as nginx buffer responses unless told not to.
        "x-accel-buffering": "no",
      });
      await write(res, `retry: ${RETRY_MS}\n\n`, closed.signal);
      for await (const item of deps.hub.watch(task, cursor.after, ending.signal)) {
        await write(res, item.event ? sseFrame(task.task_id, item.event) : ": keep-alive\n\n", closed.signal);
      }
    } catch (error) {
      // Shutdown or a deleted task: end the response; EventSource reconnects with
      // Last-Event-ID (to another replica), and gets its answer there.
      if (!(error instanceof ConnectError)) throw error;
      if (error.code !== Code.Unavailable) deps.logger.debug({ err: error, taskId }, "SSE stream ended early");
    } finally {
      unwatch();
      slot.release();
    }
    if (revoked) await write(res, revokedFrame(revoked), closed.signal);
    if (!closed.signal.aborted) res.end();
  }
}

/** The last event of a stream whose API key was revoked (seen within about 5 s, see
 * `Authenticator.watch`): `event: error`, data {code: "unauthenticated", message, reason}. */
function revokedFrame(failure: AuthFailure): string {
  return `event: error\ndata: ${JSON.stringify({ code: "unauthenticated", message: failure.message, reason: failure.reason })}\n\n`;
}

/** Writes, and waits while the client is slow: an SSE client that does not read holds at
 * most the socket's buffer, and its watch does not advance meanwhile. */
function write(res: NodeResponse, chunk: string, closed: AbortSignal): Promise<void> {
  if (closed.aborted) return Promise.resolve();
  if (res.write(chunk)) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off("drain", done);
      closed.removeEventListener("abort", done);
      resolve();
    };
    res.on("drain", done);
    closed.addEventListener("abort", done, { once: true });
  });
}

// The one port's request guard: what belongs to the transport rather than to an
// RPC (authority check, declared-size limit, Connection: close while draining),
// and a protocol-correct INTERNAL for a handler that throws.
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { type FailureReporter, requestContextOf, requestScope } from "./request-failures.js";

/** What `connectNodeAdapter` returns (connect-node does not export the type by name). */
export type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;
type NodeServerRequest = Parameters<NodeHandlerFn>[0];
type NodeServerResponse = Parameters<NodeHandlerFn>[1];

/** What the request handler sees as the request's authority when the client sent none (HTTP/1.0, h2 without :authority). */
const FALLBACK_AUTHORITY = "localhost";
/** host or [ipv6] with an optional port (RFC 3986 authority without userinfo). */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::\d{0,5})?$/;

/**
 * Wraps the handler with what belongs to the transport rather than to an RPC, and makes sure
 * nothing thrown while handling a request leaves it: a throw is logged (rate-limited) and the
 * request alone fails.
 */
export function guardRequests(
  handler: NodeHandlerFn,
  maxRequestBytes: number | undefined,
  closing: () => boolean,
  failures: FailureReporter,
) {
  return (req: NodeServerRequest, res: NodeServerResponse) => {
    const context = requestContextOf(req);
    const abort = () => res.destroy();
    requestScope.run({ context, abort }, () => {
      try {
        const http1 = req.httpVersionMajor === 1;
        // While draining, an HTTP/1.1 client is told not to reuse the connection.
        if (http1 && closing()) res.setHeader("connection", "close");
        if (!normalizeAuthority(req)) {
          // RFC 9112 §3.2: a Host that is not an authority is answered 400.
          res.writeHead(400, http1 ? { connection: "close" } : {});
          res.end();
          return;
        }
        const declared = Number(req.headers["content-length"]);
        if (maxRequestBytes !== undefined && declared > maxRequestBytes) {
          // Closing the connection spares reading a body that is refused anyway.
          res.writeHead(413, http1 ? { connection: "close" } : {});
          res.end();
          return;
        }
        handler(req, res);
      } catch (error) {
        failures.report(error, context);
        answerUnexpected(req, res);
      }
    });
  };
}

/**
 * The handlers build the request URL from its authority (Host, or :authority on HTTP/2).
 * Missing or empty (allowed on HTTP/1.0 and HTTP/2, and for an empty Host), it becomes
 * FALLBACK_AUTHORITY: nothing here routes by host. False when present but malformed.
 */
function normalizeAuthority(req: NodeServerRequest): boolean {
  const headers = req.headers as Record<string, string | string[] | undefined>;
  const key = req.httpVersionMajor === 1 ? "host" : headers[":authority"] !== undefined ? ":authority" : "host";
  const value = headers[key];
  if (value === undefined || value === "") {
    headers[key] = FALLBACK_AUTHORITY;
    return true;
  }
  return typeof value === "string" && AUTHORITY.test(value) && URL.canParse(`http://${value}/`);
}

/** A request whose handler threw: an honest INTERNAL in the caller's protocol, or a reset once the answer has begun. */
function answerUnexpected(req: NodeServerRequest, res: NodeServerResponse): void {
  try {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const contentType = String(req.headers["content-type"] ?? "");
    if (contentType.startsWith("application/grpc")) {
      // Trailers-only: the status travels in the headers (gRPC over HTTP/2 and gRPC-Web alike).
      res.writeHead(200, {
        "content-type": contentType.split(";")[0]!,
        "grpc-status": "13",
        "grpc-message": "internal error",
      });
      res.end();
      return;
    }
    const body = JSON.stringify({ code: "internal", message: "internal error" });
    res.writeHead(500, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
    res.end(body);
  } catch {
    res.destroy();
  }
}

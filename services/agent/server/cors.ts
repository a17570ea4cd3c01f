// CORS for browser clients on the one port: every Connect, gRPC-Web and SSE route.
// An allowed origin gets its preflight answered (204) and `Access-Control-*` headers on
// the actual response; an origin not on the list gets no CORS headers (the browser
// blocks the response) and its preflight is refused with 403 and a short text body.
// Requests without an `Origin` header (every non-browser client) pass through untouched.
import { cors as connectCors } from "@connectrpc/connect";
import type { NodeHandlerFn } from "./one-port.js";

type NodeRequest = Parameters<NodeHandlerFn>[0];
type NodeResponse = Parameters<NodeHandlerFn>[1];

/** Headers a browser may send besides Connect's and gRPC-Web's own. */
const AGENTD_REQUEST_HEADERS = ["authorization", "last-event-id", "x-request-id", "accept", "cache-control"];
/** Response headers a page may read besides Connect's and gRPC-Web's own. */
const AGENTD_RESPONSE_HEADERS = ["x-request-id", "retry-after", "connect-content-encoding", "grpc-encoding"];
/** Seconds a browser may cache a preflight answer (Chromium caps it at 7200). */
const MAX_AGE_SECONDS = 7200;

const ALLOWED_METHODS = [...new Set([...connectCors.allowedMethods, "OPTIONS"])].join(", ");
const ALLOWED_HEADERS = [
  ...new Set([...connectCors.allowedHeaders, ...AGENTD_REQUEST_HEADERS].map((h) => h.toLowerCase())),
].join(", ");
const EXPOSED_HEADERS = [
  ...new Set([...connectCors.exposedHeaders, ...AGENTD_RESPONSE_HEADERS].map((h) => h.toLowerCase())),
].join(", ");

/** The origins `agentd dev` allows: any port on loopback, over plain http. */
export const DEV_CORS_ORIGINS = ["http://localhost:*", "http://127.0.0.1:*"];

/**
 * Whether `origin` is allowed by `patterns`: exact origins, `*` (any origin, only when listed
 * explicitly), or `scheme://host:*` (any port on that host).
 */
export function createOriginCheck(patterns: readonly string[]): (origin: string) => boolean {
  const exact = new Set<string>();
  const anyPort: string[] = [];
  let any = false;
  for (const raw of patterns) {
    const pattern = raw.trim().replace(/\/+$/, "");
    if (pattern === "*") any = true;
    else if (pattern.endsWith(":*")) anyPort.push(pattern.slice(0, -1));
    else if (pattern) exact.add(pattern.toLowerCase());
  }
  return (origin) => {
    if (any) return true;
    const o = origin.toLowerCase();
    if (exact.has(o)) return true;
    // "http://localhost:" + digits only: no "http://localhost:80.evil.example".
    return anyPort.some((prefix) => o.startsWith(prefix) && /^\d{1,5}$/.test(o.slice(prefix.length)));
  };
}

/**
 * `handler` behind CORS for `origins` (AGENTD_CORS_ORIGINS, plus the dev loopback patterns).
 * With no origins listed every preflight is still answered here, with 403: passed on, it would
 * reach the RPC routes as an unknown OPTIONS request (405), which tells a developer nothing.
 */
export function withCors(handler: NodeHandlerFn, origins: readonly string[]): NodeHandlerFn {
  const allowed = createOriginCheck(origins);
  return (req: NodeRequest, res: NodeResponse) => {
    const origin = req.headers.origin;
    if (typeof origin !== "string" || origin === "") {
      handler(req, res);
      return;
    }
    const ok = allowed(origin);
    const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    // The answer depends on Origin: caches must not hand one origin's answer to another.
    res.setHeader(
      "vary",
      preflight ? "origin, access-control-request-method, access-control-request-headers" : "origin",
    );
    if (preflight) {
      if (!ok) {
        const body = "origin not allowed: add it to AGENTD_CORS_ORIGINS\n";
        res.writeHead(403, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      res.writeHead(204, {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ALLOWED_METHODS,
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": String(MAX_AGE_SECONDS),
      });
      res.end();
      return;
    }
    if (ok) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
    }
    handler(req, res);
  };
}

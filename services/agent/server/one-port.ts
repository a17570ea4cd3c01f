// One TCP port for every protocol: gRPC over h2c, and Connect and gRPC-Web over
// both HTTP/1.1 and h2c (prior knowledge). Node has no plain-text server that
// speaks both HTTP versions, so each new socket is sniffed for the HTTP/2
// client preface and handed to an http2 or an http server that never listens
// itself.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { type Logger, silentLogger } from "../../shared/log.js";
import type { TlsTerminator } from "./tls.js";
import { createFailureReporter, type FailureReporter, requestContextOf, requestScope } from "./request-failures.js";

/** What `connectNodeAdapter` returns (connect-node does not export the type by name). */
export type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;
type NodeServerRequest = Parameters<NodeHandlerFn>[0];
type NodeServerResponse = Parameters<NodeHandlerFn>[1];

export interface OnePortOptions {
  /** The request handler from `connectNodeAdapter`; it serves http1 and http2 requests alike. */
  handler: NodeHandlerFn;
  /** Interface to bind. Default "0.0.0.0" (a server in a container must be reachable); tests pass 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /**
   * Requests that declare a larger Content-Length are refused with 413 before the handler runs.
   * Streamed bodies declare none: set `readMaxBytes` on `connectNodeAdapter` for the per-message limit.
   */
  maxRequestBytes?: number;
  /** When connections that do no work are closed. */
  timeouts?: Partial<ConnectionTimeouts>;
  logger?: Logger;
  /** TLS (tls.ts): each connection is decrypted first and ALPN, not sniffing, picks HTTP/2 or HTTP/1.1. */
  tls?: TlsTerminator;
}

/** Connections that hold resources without doing work are closed after these times (ms). */
interface ConnectionTimeouts {
  /**
   * A connection with no request or stream open: an HTTP/2 session (from its start or its last
   * stream's end) and an HTTP/1.1 keep-alive connection. Open streams (WatchTask, SSE, Converse)
   * keep their connection however quiet they are.
   */
  idleMs: number;
  /** A new connection must send its protocol preface (HTTP/2: and its SETTINGS; HTTP/1.1: its request headers) within this. */
  headersMs: number;
  /** An HTTP/1.1 request must be received whole, body included, within this (408 otherwise); answering may take longer. */
  requestMs: number;
}

const DEFAULT_TIMEOUTS: ConnectionTimeouts = {
  // Longer than the usual 60 s load-balancer idle timeout, so the balancer closes first.
  idleMs: 65_000,
  headersMs: 30_000,
  requestMs: 60_000,
};

export interface OnePortServer {
  readonly port: number;
  /** http(s)://host:port, with a wildcard host replaced by loopback so that it can be dialled. */
  readonly url: string;
  /**
   * Stops accepting connections, asks open ones to finish (HTTP/2 GOAWAY; HTTP/1.1 idle
   * connections closed, busy ones answered with `Connection: close`), waits up to `graceMs`
   * (default 10 s) for in-flight calls, then destroys what is left. Resolves once every socket
   * is closed. Calling it again returns the same promise.
   */
  close(opts?: { graceMs?: number }): Promise<void>;
  /** Sockets accepted and not yet closed, whatever their protocol or state. */
  openConnections(): number;
}

/** The 24 bytes every HTTP/2 prior-knowledge connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** A client that has not sent enough bytes to tell its protocol within this time is dropped. */
const SNIFF_TIMEOUT_MS = 10_000;
const DEFAULT_GRACE_MS = 10_000;
/** Pause between sweeps of HTTP/1.1 connections that went idle during a graceful close. */
const IDLE_SWEEP_MS = 50;

export type WireProtocol = "h2" | "http1";

/**
 * Which server a connection belongs to, from its first bytes; undefined while the bytes
 * seen so far are still a prefix of the HTTP/2 preface (a slow client).
 */
export function detectProtocol(head: Uint8Array): WireProtocol | undefined {
  const n = Math.min(head.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) {
    if (head[i] !== H2_PREFACE[i]) return "http1";
  }
  return head.length >= H2_PREFACE.length ? "h2" : undefined;
}

export async function listenOnePort(opts: OnePortOptions): Promise<OnePortServer> {
  const log = opts.logger ?? silentLogger();
  const host = opts.host ?? "0.0.0.0";
  const sockets = new Set<net.Socket>();
  /** Sockets whose protocol is not known yet → how many bytes they have sent. */
  const sniffing = new Map<net.Socket, () => number>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const drained: Array<() => void> = [];
  let closing = false;

  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const failures = createFailureReporter(log);
  const onRequest = guardRequests(opts.handler, opts.maxRequestBytes, () => closing, failures);

  const h1 = http.createServer(
    {
      // Receiving the request is bounded (a trickled body gets 408); answering is not, so
      // long server streams and SSE run for as long as the client wants.
      requestTimeout: timeouts.requestMs,
      // A client must finish its headers in time (slowloris). Node requires it ≤ requestTimeout.
      headersTimeout: Math.min(timeouts.headersMs, timeouts.requestMs),
      keepAliveTimeout: timeouts.idleMs,
      // Node checks the two timeouts above on this interval (30 s by default, too coarse for short ones).
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(Math.min(timeouts.headersMs, timeouts.requestMs) / 4))),
    },
    onRequest,
  );
  // http.Server starts its connection tracking, which enforces headersTimeout and makes
  // closeIdleConnections() work, on its own 'listening' event. It never listens here.
  h1.emit("listening");

  const h2 = http2.createServer(
    {
      settings: {
        // Bounds the memory one connection can hold; clients queue streams beyond it.
        maxConcurrentStreams: 1_000,
      },
    },
    onRequest,
  );
  // No inactivity timeout on sessions: a Watch may be silent for long. Sessions without streams
  // are reaped by reapIdleSessions; dead peers are found by TCP keep-alive.
  h2.setTimeout(0);
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    reapIdleSessions(session, timeouts, log);
    if (closing) session.close();
  });
  h2.on("sessionError", (err) => log.debug({ err }, "http2 session error"));

  // TLS: the handshake's ALPN result routes the decrypted socket (h2 → http2, else HTTP/1.1).
  const acceptTls = opts.tls?.serve((protocol, secure) => (protocol === "h2" ? h2 : h1).emit("connection", secure));

  const tcp = net.createServer({ pauseOnConnect: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 });
  tcp.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      if (sockets.size === 0) for (const wake of drained.splice(0)) wake();
    });
    if (closing) {
      socket.destroy();
      return;
    }
    if (acceptTls) {
      acceptTls(socket);
      return;
    }
    const received = sniff(socket, Math.min(SNIFF_TIMEOUT_MS, timeouts.headersMs), (protocol, reason) => {
      sniffing.delete(socket);
      if (protocol === undefined) {
        log.debug({ reason }, "connection dropped before its protocol was known");
        socket.destroy();
        return;
      }
      // Also while closing: its request is under way. A new h2 session gets GOAWAY at once
      // (its streams are refused, which clients retry elsewhere); HTTP/1.1 gets Connection: close.
      (protocol === "h2" ? h2 : h1).emit("connection", socket);
    });
    sniffing.set(socket, received);
  });
  tcp.on("error", (err) => log.error({ err }, "listener error"));

  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(opts.port, host, () => {
        tcp.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    h1.close();
    throw err;
  }
  const port = (tcp.address() as net.AddressInfo).port;

  const allClosed = () =>
    sockets.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => drained.push(resolve));

  let closed: Promise<void> | undefined;
  async function shutdown(graceMs: number): Promise<void> {
    closing = true;
    const listenerClosed = new Promise<void>((resolve) => tcp.close(() => resolve()));
    for (const [socket, received] of sniffing) {
      if (received() === 0) socket.destroy(); // connected but sent nothing: no call to finish
    }
    for (const session of sessions) session.close(); // GOAWAY; ends once its streams finish
    h1.closeIdleConnections();
    const sweep = setInterval(() => h1.closeIdleConnections(), IDLE_SWEEP_MS);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([allClosed(), graceOver]);
    clearInterval(sweep);
    clearTimeout(timer);
    if (sockets.size > 0) {
      log.warn({ connections: sockets.size, graceMs }, "grace period over, closing remaining connections");
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    }
    await allClosed();
    await listenerClosed;
    h1.close(); // stops its connection-checking interval
  }

  log.info({ host, port, tls: Boolean(opts.tls) }, opts.tls ? "listening (gRPC, Connect, gRPC-Web; TLS with ALPN h2 and http/1.1)" : "listening (gRPC, Connect, gRPC-Web; HTTP/1.1 and h2c)");
  return {
    port,
    url: `${opts.tls ? "https" : "http"}://${dialHost(host)}:${port}`,
    openConnections: () => sockets.size,
    close(closeOpts = {}) {
      closed ??= shutdown(closeOpts.graceMs ?? DEFAULT_GRACE_MS);
      return closed;
    },
  };
}

/**
 * Reads a paused socket until its protocol is known, then puts the bytes back for the real
 * server. Uses 'readable' + read(), not a 'data' listener: flowing mode hands bytes on that
 * the http2 session then never sees (unary h2c calls from grpc-js break). Returns a probe of
 * the bytes received so far.
 */
function sniff(socket: net.Socket, timeoutMs: number, done: (protocol: WireProtocol | undefined, reason?: string) => void): () => number {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;

  const finish = (protocol: WireProtocol | undefined, reason?: string) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off("readable", onReadable);
    socket.off("end", onEnd);
    socket.off("error", onError);
    socket.off("close", onClose);
    if (protocol !== undefined && size > 0) socket.unshift(Buffer.concat(chunks, size));
    done(protocol, reason);
  };
  const onReadable = () => {
    for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
      chunks.push(chunk);
      size += chunk.length;
    }
    const protocol = detectProtocol(Buffer.concat(chunks, size));
    if (protocol !== undefined) finish(protocol);
  };
  const onEnd = () => finish(undefined, "client ended the connection");
  const onError = (err: Error) => finish(undefined, err.message);
  const onClose = () => finish(undefined, "connection closed");
  const timer = setTimeout(() => finish(undefined, "no protocol preface in time"), timeoutMs);
  timer.unref();

  socket.on("readable", onReadable);
  socket.once("end", onEnd);
  socket.once("error", onError);
  socket.once("close", onClose);
  return () => size;
}

/**
 * Closes an HTTP/2 session that does no work: one that has not sent its SETTINGS within
 * `headersMs` (a client that sent the preface and nothing else), and one with no open stream
 * for `idleMs`. A session with a stream open, however quiet, is left alone.
 */
function reapIdleSessions(session: http2.ServerHttp2Session, timeouts: ConnectionTimeouts, log: Logger): void {
  let open = 0;
  let idle: NodeJS.Timeout | undefined;
  const handshake = setTimeout(() => {
    log.debug({ timeoutMs: timeouts.headersMs }, "http2 client sent no SETTINGS in time: closing");
    session.destroy();
  }, timeouts.headersMs);
  handshake.unref();
  session.once("remoteSettings", () => clearTimeout(handshake));
  const arm = () => {
    idle = setTimeout(() => {
      log.debug({ timeoutMs: timeouts.idleMs }, "idle http2 session: closing");
      session.close(); // GOAWAY; without streams the session ends at once
    }, timeouts.idleMs);
    idle.unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(idle);
    stream.once("close", () => {
      if (--open === 0 && !session.closed && !session.destroyed) arm();
    });
  });
  session.once("close", () => {
    clearTimeout(handshake);
    clearTimeout(idle);
  });
  arm();
}

/** What the request handler sees as the request's authority when the client sent none (HTTP/1.0, h2 without :authority). */
const FALLBACK_AUTHORITY = "localhost";
/** host or [ipv6] with an optional port (RFC 3986 authority without userinfo). */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::\d{0,5})?$/;

/**
 * Wraps the handler with what belongs to the transport rather than to an RPC, and makes sure
 * nothing thrown while handling a request leaves it: a throw is logged (rate-limited) and the
 * request alone fails.
 */
function guardRequests(handler: NodeHandlerFn, maxRequestBytes: number | undefined, closing: () => boolean, failures: FailureReporter) {
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
      res.writeHead(200, { "content-type": contentType.split(";")[0]!, "grpc-status": "13", "grpc-message": "internal error" });
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

function dialHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return net.isIPv6(host) ? `[${host}]` : host;
}

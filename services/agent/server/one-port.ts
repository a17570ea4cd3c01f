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
  logger?: Logger;
  /** TLS (tls.ts): each connection is decrypted first and ALPN, not sniffing, picks HTTP/2 or HTTP/1.1. */
  tls?: TlsTerminator;
}

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

  const onRequest = guardRequests(opts.handler, opts.maxRequestBytes, () => closing);

  const h1 = http.createServer(
    {
      // Long server streams and SSE run for as long as the client wants: no overall limit.
      requestTimeout: 0,
      // A client must finish its headers in time (slowloris); bodies may stream.
      headersTimeout: 30_000,
      // Longer than the usual 60 s load-balancer idle timeout, so the balancer closes first.
      keepAliveTimeout: 65_000,
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
  // No idle timeout on sessions: a Watch may be silent for long. Dead peers are found by TCP keep-alive.
  h2.setTimeout(0);
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
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
    const received = sniff(socket, (protocol, reason) => {
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
function sniff(socket: net.Socket, done: (protocol: WireProtocol | undefined, reason?: string) => void): () => number {
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
  const timer = setTimeout(() => finish(undefined, "no protocol preface in time"), SNIFF_TIMEOUT_MS);
  timer.unref();

  socket.on("readable", onReadable);
  socket.once("end", onEnd);
  socket.once("error", onError);
  socket.once("close", onClose);
  return () => size;
}

/** Wraps the handler with what belongs to the transport rather than to an RPC. */
function guardRequests(handler: NodeHandlerFn, maxRequestBytes: number | undefined, closing: () => boolean) {
  return (req: NodeServerRequest, res: NodeServerResponse) => {
    const http1 = req.httpVersionMajor === 1;
    // While draining, an HTTP/1.1 client is told not to reuse the connection.
    if (http1 && closing()) res.setHeader("connection", "close");
    const declared = Number(req.headers["content-length"]);
    if (maxRequestBytes !== undefined && declared > maxRequestBytes) {
      // Closing the connection spares reading a body that is refused anyway.
      res.writeHead(413, http1 ? { connection: "close" } : {});
      res.end();
      return;
    }
    handler(req, res);
  };
}

function dialHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return net.isIPv6(host) ? `[${host}]` : host;
}

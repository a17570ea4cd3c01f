// One TCP port for every protocol: gRPC over h2c, and Connect and gRPC-Web over
// both HTTP/1.1 and h2c (prior knowledge). Node has no plain-text server that
// speaks both HTTP versions, so each new socket is sniffed for the HTTP/2
// client preface and handed to an http2 or an http server that never listens
// itself.
// Split by seam: one-port-sniff.ts (preface sniffing), one-port-timeouts.ts (the two servers and
// their idle/handshake timeouts), one-port-requests.ts (the request guard); routing and graceful
// close stay here.
import type * as http from "node:http";
import type * as http2 from "node:http2";
import * as net from "node:net";
import type { Duplex } from "node:stream";
import { type Logger, silentLogger } from "../../shared/log.js";
import type { Http2StreamHandler } from "./grpc-js/injector.js";
import { type H2Target, routeH2Connection } from "./h2-route.js";
import { guardRequests, type NodeHandlerFn } from "./one-port-requests.js";
import { SNIFF_TIMEOUT_MS, sniff } from "./one-port-sniff.js";
import {
  type ConnectionTimeouts,
  createProtocolServers,
  DEFAULT_TIMEOUTS,
  reapIdleSessions,
} from "./one-port-timeouts.js";
import { createFailureReporter } from "./request-failures.js";
import type { TlsTerminator } from "./tls.js";

export type { NodeHandlerFn } from "./one-port-requests.js";
export { detectProtocol, type WireProtocol } from "./one-port-sniff.js";

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
  /**
   * A second HTTP/2 server for gRPC (a grpc-js `Server`'s connection injector, grpc-js/injector.ts),
   * built with the port's way to serve any other stream of its connections through `handler`.
   * When set, each HTTP/2 connection is routed whole by its first request's content-type
   * (h2-route.ts): gRPC to it, Connect and gRPC-Web to `handler`. Unset: `handler` serves every
   * protocol.
   */
  grpc?: (otherStreams: Http2StreamHandler) => GrpcConnectionSink;
  /** Counts each HTTP/2 connection by the server it was handed to. */
  onH2Connection?: (server: "connect" | "grpc-js") => void;
}

/** What one-port needs of grpc-js's `ConnectionInjector`. */
export interface GrpcConnectionSink {
  injectConnection(connection: Duplex): void;
  /** GOAWAY to every session now; sessions still open after `graceMs` are destroyed. */
  drain(graceMs: number): void;
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

const DEFAULT_GRACE_MS = 10_000;
/** Pause between sweeps of HTTP/1.1 connections that went idle during a graceful close. */
const IDLE_SWEEP_MS = 50;

/** What routing and graceful close share for one listening port. */
interface PortState {
  readonly log: Logger;
  readonly timeouts: ConnectionTimeouts;
  readonly sockets: Set<net.Socket>;
  /** Sockets whose protocol is not known yet → how many bytes they have sent. */
  readonly sniffing: Map<net.Socket, () => number>;
  readonly sessions: Set<http2.ServerHttp2Session>;
  readonly drained: Array<() => void>;
  closing: boolean;
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  readonly acceptTls: ((socket: net.Socket) => void) | undefined;
  /** Hands an HTTP/2 socket (plain or decrypted) to its server. */
  readonly acceptH2: (socket: Duplex) => void;
  readonly grpc: GrpcConnectionSink | undefined;
}

export async function listenOnePort(opts: OnePortOptions): Promise<OnePortServer> {
  const log = opts.logger ?? silentLogger();
  const host = opts.host ?? "0.0.0.0";

  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const failures = createFailureReporter(log);
  // Requests arrive only after `state` exists (the listener is not open before).
  const onRequest = guardRequests(opts.handler, opts.maxRequestBytes, () => state.closing, failures);
  const { h1, h2 } = createProtocolServers(onRequest, timeouts, log);
  // A Connect or gRPC-Web stream on a connection grpc-js took is served as if h2 had read it.
  const grpc = opts.grpc?.((stream, headers, flags, rawHeaders) =>
    h2.emit("stream", stream, headers, flags, rawHeaders),
  );
  const state: PortState = {
    log,
    timeouts,
    sockets: new Set(),
    sniffing: new Map(),
    sessions: new Set(),
    drained: [],
    closing: false,
    h1,
    h2,
    // TLS: the handshake's ALPN result routes the decrypted socket (h2 → http2, else HTTP/1.1).
    acceptTls: opts.tls?.serve((protocol, secure) =>
      protocol === "h2" ? state.acceptH2(secure) : h1.emit("connection", secure),
    ),
    acceptH2: h2Acceptor(h2, grpc, opts, timeouts, log),
    grpc,
  };
  h2.on("session", (session) => {
    state.sessions.add(session);
    session.once("close", () => state.sessions.delete(session));
    reapIdleSessions(session, timeouts, log);
    if (state.closing) session.close();
  });

  const tcp = net.createServer({ pauseOnConnect: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 });
  tcp.on("connection", (socket) => acceptConnection(state, socket));
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

  let closed: Promise<void> | undefined;
  log.info(
    { host, port, tls: Boolean(opts.tls) },
    opts.tls
      ? "listening (gRPC, Connect, gRPC-Web; TLS with ALPN h2 and http/1.1)"
      : "listening (gRPC, Connect, gRPC-Web; HTTP/1.1 and h2c)",
  );
  return {
    port,
    url: `${opts.tls ? "https" : "http"}://${dialHost(host)}:${port}`,
    openConnections: () => state.sockets.size,
    close(closeOpts = {}) {
      closed ??= shutdown(state, tcp, closeOpts.graceMs ?? DEFAULT_GRACE_MS);
      return closed;
    },
  };
}

/** A socket the listener accepted: tracked until it closes, then routed by TLS ALPN or by sniffing. */
function acceptConnection(state: PortState, socket: net.Socket): void {
  const { sockets, drained, sniffing, log, h1 } = state;
  sockets.add(socket);
  socket.once("close", () => {
    sockets.delete(socket);
    if (sockets.size === 0) for (const wake of drained.splice(0)) wake();
  });
  if (state.closing) {
    socket.destroy();
    return;
  }
  if (state.acceptTls) {
    state.acceptTls(socket);
    return;
  }
  const received = sniff(socket, Math.min(SNIFF_TIMEOUT_MS, state.timeouts.headersMs), (protocol, reason) => {
    sniffing.delete(socket);
    if (protocol === undefined) {
      log.debug({ reason }, "connection dropped before its protocol was known");
      socket.destroy();
      return;
    }
    // Also while closing: its request is under way. A new h2 session gets GOAWAY at once
    // (its streams are refused, which clients retry elsewhere); HTTP/1.1 gets Connection: close.
    if (protocol === "h2") state.acceptH2(socket);
    else h1.emit("connection", socket);
  });
  sniffing.set(socket, received);
}

/**
 * Without a gRPC server every HTTP/2 connection goes to connect-node; with one, each is routed
 * by its first request (h2-route.ts).
 */
function h2Acceptor(
  h2: http2.Http2Server,
  grpc: GrpcConnectionSink | undefined,
  opts: OnePortOptions,
  timeouts: ConnectionTimeouts,
  log: Logger,
): (socket: Duplex) => void {
  const count = opts.onH2Connection ?? (() => {});
  if (!grpc) {
    return (socket) => {
      count("connect");
      h2.emit("connection", socket);
    };
  }
  return (socket) => {
    routeH2Connection(socket, timeouts.headersMs, (target: H2Target | undefined, reason) => {
      if (target === undefined) {
        log.debug({ reason }, "http2 connection dropped before its first request");
        socket.destroy();
        return;
      }
      if (reason) log.debug({ reason, target }, "http2 connection routed without a readable first request");
      if (target === "grpc") {
        count("grpc-js");
        grpc.injectConnection(socket);
      } else {
        count("connect");
        h2.emit("connection", socket);
      }
    });
  };
}

function allClosed(state: PortState): Promise<void> {
  return state.sockets.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => state.drained.push(resolve));
}

/** The graceful close behind OnePortServer.close (see there). */
async function shutdown(state: PortState, tcp: net.Server, graceMs: number): Promise<void> {
  const { sockets, sniffing, sessions, log, h1 } = state;
  state.closing = true;
  const listenerClosed = new Promise<void>((resolve) => tcp.close(() => resolve()));
  for (const [socket, received] of sniffing) {
    if (received() === 0) socket.destroy(); // connected but sent nothing: no call to finish
  }
  for (const session of sessions) session.close(); // GOAWAY; ends once its streams finish
  state.grpc?.drain(graceMs);
  h1.closeIdleConnections();
  const sweep = setInterval(() => h1.closeIdleConnections(), IDLE_SWEEP_MS);
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
  });
  await Promise.race([allClosed(state), graceOver]);
  clearInterval(sweep);
  clearTimeout(timer);
  if (sockets.size > 0) {
    log.warn({ connections: sockets.size, graceMs }, "grace period over, closing remaining connections");
    for (const session of sessions) session.destroy();
    for (const socket of sockets) socket.destroy();
  }
  await allClosed(state);
  await listenerClosed;
  h1.close(); // stops its connection-checking interval
}

function dialHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return net.isIPv6(host) ? `[${host}]` : host;
}

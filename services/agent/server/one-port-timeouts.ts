// Connection timeouts for the one port: the HTTP/1.1 and HTTP/2 servers that never
// listen themselves, configured so that connections doing no work are closed.
import * as http from "node:http";
import * as http2 from "node:http2";
import type { Logger } from "../../shared/log.js";
import type { guardRequests } from "./one-port-requests.js";

/** Connections that hold resources without doing work are closed after these times (ms). */
export interface ConnectionTimeouts {
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

export const DEFAULT_TIMEOUTS: ConnectionTimeouts = {
  // Longer than the usual 60 s load-balancer idle timeout, so the balancer closes first.
  idleMs: 65_000,
  headersMs: 30_000,
  requestMs: 60_000,
};

/**
 * Closes an HTTP/2 session that does no work: one that has not sent its SETTINGS within
 * `headersMs` (a client that sent the preface and nothing else), and one with no open stream
 * for `idleMs`. A session with a stream open, however quiet, is left alone.
 */
export function reapIdleSessions(session: http2.ServerHttp2Session, timeouts: ConnectionTimeouts, log: Logger): void {
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

/**
 * The servers the one port hands its connections to, with the timeouts above. Neither ever
 * listens: the port's own listener emits each routed socket as their 'connection'.
 */
export function createProtocolServers(
  onRequest: ReturnType<typeof guardRequests>,
  timeouts: ConnectionTimeouts,
  log: Logger,
): { h1: http.Server; h2: http2.Http2Server } {
  const h1 = http.createServer(
    {
      // Receiving the request is bounded (a trickled body gets 408); answering is not, so
      // long server streams and SSE run for as long as the client wants.
      requestTimeout: timeouts.requestMs,
      // A client must finish its headers in time (slowloris). Node requires it ≤ requestTimeout.
      headersTimeout: Math.min(timeouts.headersMs, timeouts.requestMs),
      keepAliveTimeout: timeouts.idleMs,
      // Node checks the two timeouts above on this interval (30 s by default, too coarse for short ones).
      connectionsCheckingInterval: Math.max(
        50,
        Math.min(30_000, Math.floor(Math.min(timeouts.headersMs, timeouts.requestMs) / 4)),
      ),
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
  h2.on("sessionError", (err) => log.debug({ err }, "http2 session error"));
  return { h1, h2 };
}

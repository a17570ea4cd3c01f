// Plain-text protocol detection for the one port: a new socket is read until its
// first bytes show the HTTP/2 client preface (h2c prior knowledge) or not (HTTP/1.1).
import type * as net from "node:net";

/** The 24 bytes every HTTP/2 prior-knowledge connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** A client that has not sent enough bytes to tell its protocol within this time is dropped. */
export const SNIFF_TIMEOUT_MS = 10_000;

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

/**
 * Reads a paused socket until its protocol is known, then puts the bytes back for the real
 * server. Uses 'readable' + read(), not a 'data' listener: flowing mode hands bytes on that
 * the http2 session then never sees (unary h2c calls from grpc-js break). Returns a probe of
 * the bytes received so far.
 */
export function sniff(
  socket: net.Socket,
  timeoutMs: number,
  done: (protocol: WireProtocol | undefined, reason?: string) => void,
): () => number {
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

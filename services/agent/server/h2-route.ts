// Routes a whole HTTP/2 connection to one of two servers by its first request: gRPC that grpc-js
// serves as connect-node would (servedByGrpcJs: binary protobuf, uncompressed) to grpc-js,
// everything else (Connect, gRPC-Web, other gRPC) to connect-node. Both want whole connections, and gRPC clients do not mix protocols on one
// connection, so the first request decides. The bytes read to decide are put back for the
// chosen server, which then runs the connection as if it had read them itself.
import type { Duplex } from "node:stream";
import {
  EMPTY_SETTINGS_FRAME,
  H2_PREFACE,
  hasSettingsAck,
  readFirstHeaders,
  servedByGrpcJs,
  withoutFirstSettingsAck,
} from "./h2-first-headers.js";

export type H2Target = "grpc" | "connect";

/**
 * Reads a paused h2 socket (plain or decrypted TLS) until its first request's headers are known,
 * then calls `done` with the server to hand it to, the bytes already put back. Some clients send
 * no request before they see the server's SETTINGS, so an empty SETTINGS frame is written as soon
 * as the preface is in; the client's ACK for it is removed from the bytes put back (the real
 * server never sent those settings and would take the ACK for its own). A connection whose start
 * does not parse, or that sends no request in time, goes to connect-node, which answers or reaps
 * it as before. `done(undefined)` when the client went away first.
 */
export function routeH2Connection(
  socket: Duplex,
  timeoutMs: number,
  done: (target: H2Target | undefined, reason?: string) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settingsSent = false;
  let finished = false;
  let target: H2Target | undefined;

  const finish = (to: H2Target | undefined, reason?: string) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off("readable", onReadable);
    socket.off("end", onEnd);
    socket.off("error", onError);
    socket.off("close", onClose);
    if (to !== undefined && size > 0) {
      const bytes = Buffer.concat(chunks, size);
      socket.unshift(settingsSent ? withoutFirstSettingsAck(bytes) : bytes);
    }
    done(to, reason);
  };
  const onReadable = () => {
    if (finished) return; // a late 'readable' must not take bytes that are the server's now
    for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
      chunks.push(chunk);
      size += chunk.length;
    }
    const bytes = Buffer.concat(chunks, size);
    if (!settingsSent && size >= H2_PREFACE.length) {
      settingsSent = true;
      socket.write(EMPTY_SETTINGS_FRAME);
    }
    if (target === undefined) {
      const first = readFirstHeaders(bytes);
      if (first.kind === "incomplete") return;
      if (first.kind === "invalid") return finish("connect", first.reason);
      target = servedByGrpcJs((name) => first.headers.get(name)) ? "grpc" : "connect";
    }
    // The client acknowledges the router's SETTINGS promptly (RFC 9113 §6.5.3); wait for it so
    // that it can be removed before the real server sees the stream.
    if (!settingsSent || hasSettingsAck(bytes)) finish(target);
  };
  const onEnd = () => finish(undefined, "client ended the connection");
  const onError = (err: Error) => finish(undefined, err.message);
  const onClose = () => finish(undefined, "connection closed");
  const timer = setTimeout(() => {
    // A pool's idle connection with no request yet: connect-node holds and reaps it as before.
    // With the request known but no ACK, the ACK is still removed if it is in the bytes.
    finish(target ?? "connect", "no first request in time");
  }, timeoutMs);
  timer.unref();

  socket.on("readable", onReadable);
  socket.once("end", onEnd);
  socket.once("error", onError);
  socket.once("close", onClose);
  // Bytes put back by the preface sniffer are read at once.
  if (socket.readableLength > 0) queueMicrotask(onReadable);
}

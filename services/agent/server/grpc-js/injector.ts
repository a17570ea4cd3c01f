// The one port's way into a grpc-js Server: a connection injector whose HTTP/2 sessions serve
// gRPC streams through grpc-js and hand every other stream (Connect, gRPC-Web, and gRPC that
// grpc-js would answer differently, see servedByGrpcJs) to connect-node.
// h2-route.ts routes a connection whole by its first request. gRPC clients do not mix protocols
// on one connection, but a hand-made client may (one HTTP/2 session for a gRPC call, then a
// Connect call); grpc-js alone would answer the later call with a bare HTTP 415. Routing each
// later stream by its own content-type keeps every protocol working on every connection.
import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../../shared/log.js";
import { servedByGrpcJs } from "../h2-first-headers.js";
import type { GrpcConnectionSink } from "../one-port.js";

/** An http2 server's 'stream' listener: how a stream of another server's session is handed over. */
export type Http2StreamHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  flags: number,
  rawHeaders: string[],
) => void;

/** The client is still sending (its END_STREAM not received yet). */
const { NGHTTP2_STREAM_STATE_OPEN: STATE_OPEN, NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL: STATE_HALF_CLOSED_LOCAL } =
  http2.constants;

type StreamListener = (...args: Parameters<Http2StreamHandler>) => void;

/**
 * grpc-js creates one http2 server per injector and listens to its 'stream' event itself; that
 * server is reachable only through the Server's private `http2Servers` map (grpc-js 1.14). If a
 * later grpc-js no longer has it, gRPC keeps working and a mixed connection gets grpc-js's 415,
 * which the warning and test/protocols/h2-route.test.ts make visible.
 */
export function createGrpcJsInjector(
  server: grpc.Server,
  otherStreams: Http2StreamHandler,
  log: Logger,
): GrpcConnectionSink {
  const servers = (server as unknown as { http2Servers?: Map<http2.Http2Server, unknown> }).http2Servers;
  const before = new Set(servers?.keys() ?? []);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const created = [...(servers?.keys() ?? [])].find((candidate) => !before.has(candidate));
  if (created) routeEachStream(created, otherStreams);
  else log.warn("grpc-js internals changed: non-gRPC requests on a gRPC connection will be refused with 415");
  return injector;
}

function routeEachStream(h2: http2.Http2Server, otherStreams: Http2StreamHandler): void {
  const grpcListeners = h2.listeners("stream") as StreamListener[];
  h2.removeAllListeners("stream");
  h2.on("stream", (stream: http2.ServerHttp2Stream, headers, flags: number, rawHeaders: string[]) => {
    if (servedByGrpcJs((name) => headerValue(headers[name]))) {
      stopBodyAfterStatus(stream);
      for (const listener of grpcListeners) listener.call(h2, stream, headers, flags, rawHeaders);
    } else {
      otherStreams(stream, headers, flags, rawHeaders);
    }
  });
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}

/**
 * grpc-js may answer a call before reading all of its body (a message over the size limit, a key
 * refused before the body: before-body.ts checkBeforeBody) and then leaves the stream open
 * while the client, blocked on flow control, waits to send the rest. A complete response followed
 * by RST_STREAM(NO_ERROR) tells the client to stop sending and keep the response (RFC 9113 §8.1),
 * as connect-node's path does. The status goes out as trailers (sendTrailers) or as a
 * trailers-only response (respond with endStream); the reset is queued after either.
 */
function stopBodyAfterStatus(stream: http2.ServerHttp2Stream): void {
  // Shared functions set on the stream, not closures made per stream: an idle stream keeps them
  // for its whole life (three closures, their context and the names esbuild's keepNames gives
  // them cost about 0.5 KiB per stream).
  stream.respond = respondThenStop;
  stream.sendTrailers = sendTrailersThenStop;
}

/** The stream's own class's method (the stream's own property is the wrapper below). */
function ownMethod<K extends "respond" | "sendTrailers">(
  stream: http2.ServerHttp2Stream,
  name: K,
): http2.ServerHttp2Stream[K] {
  return (Object.getPrototypeOf(stream) as http2.ServerHttp2Stream)[name];
}

function respondThenStop(
  this: http2.ServerHttp2Stream,
  headers?: http2.OutgoingHttpHeaders,
  options?: http2.ServerStreamResponseOptions,
): void {
  ownMethod(this, "respond").call(this, headers, options);
  if (options?.endStream) setImmediate(stopIfStillSending, this);
}

function sendTrailersThenStop(this: http2.ServerHttp2Stream, trailers: http2.OutgoingHttpHeaders): void {
  ownMethod(this, "sendTrailers").call(this, trailers);
  setImmediate(stopIfStillSending, this);
}

function stopIfStillSending(stream: http2.ServerHttp2Stream): void {
  const state = stream.destroyed ? undefined : stream.state.state;
  if (!stream.closed && (state === STATE_OPEN || state === STATE_HALF_CLOSED_LOCAL)) {
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }
}

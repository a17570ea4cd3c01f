// The Node request handler for every RPC: connect-node's adapter, plus corrections
// at the wire.
// - connect-es reports a request body that is not valid protobuf binary as
//   INTERNAL ("parse binary: …"); for callers that is bad input, so it leaves as
//   INVALID_ARGUMENT in all three protocols, unary and streaming.
// - Every error message leaving here is clipped (an echo of a huge input must not
//   outgrow the ~8–64 KB that HTTP/2 peers accept for headers).
// - A body over readMaxBytes is RESOURCE_EXHAUSTED, which the Connect protocol
//   sends as HTTP 429, "retry later"; waiting never helps, so it leaves as 413.
// - `beforeBody` may decide, from the headers alone, that the body is not worth
//   reading (no valid API key): a placeholder body stands in for it, and the
//   interceptors answer in the protocol's own form.
// - connect-es percent-encodes grpc-message with encodeURIComponent, and grpc-js
//   decodes it with decodeURI, so ":" or "," reached grpc-js users as "%3A",
//   "%2C". The gRPC spec asks to encode only "%" and bytes outside 0x20–0x7E,
//   which every client decodes the same; that is what leaves here.
// Everything else is the adapter's own behaviour (connectNodeAdapter in @connectrpc/connect-node).
import {
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
  createConnectRouter,
  createContextValues,
} from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { grpcWebTextRequest, grpcWebTextResponse, isGrpcWebText } from "./grpc-web-text.js";
import type { NodeHandlerFn } from "./one-port.js";

type NodeRequest = Parameters<NodeHandlerFn>[0];
type NodeResponse = Parameters<NodeHandlerFn>[1];

export interface RpcHandlerOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  /** Serves every path that is not an RPC (SSE, metrics, 404). */
  fallback?: (req: NodeRequest, res: NodeResponse) => void;
  contextValues?: (req: NodeRequest) => ContextValues;
  /** Told about handler failures the protocol could not report (the connection broke). */
  onHandlerError?: (error: unknown, rpc: string) => void;
  /** Runs once the RPC is known, before its body is read; `readBody: false` leaves the body
   * unread (the interceptors must then refuse the call, from what this put in `values`). */
  beforeBody?: (
    req: NodeRequest,
    rpc: { service: string; method: string },
    values: ContextValues,
  ) => Promise<{ readBody: boolean }>;
}

// Also a request body that does not decompress (connect-node answers INTERNAL "decompression
// failed" for some brotli/gzip errors): the bytes are the caller's.
const DECODE_ERROR = /^(?:parse binary: |decompression failed$)/;
/** Longest error message sent; longer ones are cut. */
const MAX_ERROR_MESSAGE = 2048;
const TOO_BIG = /larger than configured readMaxBytes/;

function clipMessage(message: string): string {
  return message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message;
}

export function createRpcHandler(options: RpcHandlerOptions): NodeHandlerFn {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  options.routes(router);
  const paths = new Map(router.handlers.map((h) => [h.requestPath, h]));
  const notFound = (_req: NodeRequest, res: NodeResponse) => {
    res.writeHead(404);
    res.end();
  };
  return (req, res) => {
    const handler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (!handler) {
      (options.fallback ?? notFound)(req, res);
      return;
    }
    const rpc = `${handler.service.typeName}/${handler.method.name}`;
    const values = options.contextValues?.(req) ?? createContextValues();
    const serve = (readBody: boolean) => {
      // gRPC-Web text (base64) is served as gRPC-Web binary, translated both ways (grpc-web-text.ts).
      const text = isGrpcWebText(req.headers["content-type"] ?? null);
      const raw = universalRequestFromNodeRequest(req, res, undefined, values);
      const uReq = text ? grpcWebTextRequest(raw) : raw;
      return handler(readBody ? uReq : placeholderBody(uReq)).then((uRes) => {
        // HTTP/1.1 answered before its body was read (refused, or over readMaxBytes): close after
        // answering. Node does not drain a body the handler began to read, so the connection
        // would otherwise hang with the next request queued behind the unread bytes.
        if (req.httpVersionMajor === 1 && !req.complete && !res.headersSent) res.setHeader("connection", "close");
        const fixed = reclassifyDecodeErrors(uRes);
        return universalResponseToNodeResponse(text ? grpcWebTextResponse(fixed) : fixed, res);
      });
    };
    if (!options.beforeBody) {
      serve(true).catch((error: unknown) => options.onHandlerError?.(error, rpc));
      return;
    }
    options
      .beforeBody(req, { service: handler.service.typeName, method: handler.method.name }, values)
      .then(({ readBody }) => serve(readBody))
      .catch((error: unknown) => {
        options.onHandlerError?.(error, rpc);
        // A request the adapter could not take (e.g. no authority): 400, if the client is still there.
        if (!res.headersSent && !res.destroyed) {
          try {
            res.writeHead(400);
            res.end();
          } catch {
            // the stream closed meanwhile
          }
        }
      });
  };
}

type UniversalServerRequest = ReturnType<typeof universalRequestFromNodeRequest>;

/** The request with its body replaced by the smallest valid message of its protocol, uncompressed. */
function placeholderBody(req: UniversalServerRequest): UniversalServerRequest {
  const contentType = req.header.get("content-type") ?? "";
  const json = /json/.test(contentType);
  const message = json ? Buffer.from("{}") : Buffer.alloc(0);
  const enveloped = /^application\/(grpc|connect\+)/.test(contentType);
  const bytes = enveloped ? Buffer.concat([Buffer.from([0, 0, 0, 0, message.byteLength]), message]) : message;
  const header = new Headers(req.header);
  header.delete("content-encoding");
  header.delete("content-length");
  return {
    ...req,
    header,
    body: (async function* () {
      yield new Uint8Array(bytes);
    })(),
  };
}

/** Rewrites INTERNAL "parse binary: …" errors to INVALID_ARGUMENT, per protocol. */
function reclassifyDecodeErrors(res: UniversalServerResponse): UniversalServerResponse {
  const contentType = res.header?.get("content-type") ?? "";
  const body = res.body;
  if (!body || body instanceof Uint8Array) return res;
  if (res.status !== 200 && contentType.startsWith("application/json")) {
    // Connect unary error: a JSON body. The adapter reads `status` after the first chunk.
    const out = { ...res };
    out.body = connectErrorBody(body, out);
    return out;
  }
  if (contentType.startsWith("application/connect+")) {
    return { ...res, body: mapChunks(body, connectEndStreamFrame) };
  }
  if (contentType.startsWith("application/grpc-web")) {
    return { ...res, body: mapChunks(body, grpcWebTrailerFrame) };
  }
  if (contentType.startsWith("application/grpc")) {
    const trailer = res.trailer;
    return {
      ...res,
      body: (async function* () {
        yield* body;
        const encoded = trailer?.get("grpc-message");
        if (!trailer || !encoded) return;
        const message = safeDecode(encoded);
        if (trailer.get("grpc-status") === "13" && DECODE_ERROR.test(message)) trailer.set("grpc-status", "3");
        trailer.set("grpc-message", grpcPercentEncode(clipMessage(message)));
      })(),
    };
  }
  return res;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The gRPC spec's percent-encoding of grpc-message: only "%" and bytes outside 0x20–0x7E. */
function grpcPercentEncode(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

async function* connectErrorBody(
  body: AsyncIterable<Uint8Array>,
  res: UniversalServerResponse,
): AsyncIterable<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  try {
    const error = JSON.parse(bytes.toString("utf8")) as { code?: string; message?: string };
    const decodeError = error.code === "internal" && DECODE_ERROR.test(error.message ?? "");
    const tooBig = error.code === "resource_exhausted" && TOO_BIG.test(error.message ?? "");
    const long = (error.message?.length ?? 0) > MAX_ERROR_MESSAGE;
    if (decodeError || tooBig || long) {
      const fixed = Buffer.from(
        JSON.stringify({
          ...error,
          ...(decodeError ? { code: "invalid_argument" } : {}),
          message: clipMessage(error.message ?? ""),
        }),
      );
      // The status and length are read when the first chunk is written, after this runs.
      if (decodeError) res.status = 400;
      if (tooBig) res.status = 413;
      res.header?.set("content-length", String(fixed.byteLength));
      yield fixed;
      return;
    }
  } catch {
    // Not JSON (e.g. compressed): pass through unchanged.
  }
  yield bytes;
}

async function* mapChunks(
  body: AsyncIterable<Uint8Array>,
  fn: (chunk: Uint8Array) => Uint8Array,
): AsyncIterable<Uint8Array> {
  for await (const chunk of body) yield fn(chunk);
}

/** Connect streams end with an end-stream frame (flag 0x02) holding JSON `{"error": {code, message}}`. */
function connectEndStreamFrame(chunk: Uint8Array): Uint8Array {
  const at = findFinalFrame(chunk, 0x02);
  if (at < 0) return chunk;
  let end: { error?: { code?: string; message?: string } };
  try {
    end = JSON.parse(Buffer.from(chunk.subarray(at + 5)).toString("utf8")) as typeof end;
  } catch {
    return chunk;
  }
  const error = end.error;
  if (!error) return chunk;
  const decodeError = error.code === "internal" && DECODE_ERROR.test(error.message ?? "");
  if (!decodeError && (error.message?.length ?? 0) <= MAX_ERROR_MESSAGE) return chunk;
  const fixed = Buffer.from(
    JSON.stringify({
      ...end,
      error: {
        ...error,
        ...(decodeError ? { code: "invalid_argument" } : {}),
        message: clipMessage(error.message ?? ""),
      },
    }),
  );
  return Buffer.concat([chunk.subarray(0, at), frameOf(0x02, fixed)]);
}

function frameOf(flags: number, data: Buffer): Buffer {
  const frame = Buffer.alloc(5 + data.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(data.byteLength, 1);
  data.copy(frame, 5);
  return frame;
}

/** gRPC-Web carries its status in a final frame (flag 0x80, 4-byte length, HTTP-style lines). */
function grpcWebTrailerFrame(chunk: Uint8Array): Uint8Array {
  const at = findFinalFrame(chunk, 0x80);
  if (at < 0) return chunk;
  const text = Buffer.from(chunk.subarray(at + 5)).toString("latin1");
  const message = /grpc-message: ?([^\r\n]*)/i.exec(text)?.[1] ?? "";
  const decoded = safeDecode(message);
  const decodeError = /grpc-status: ?13\b/i.test(text) && DECODE_ERROR.test(decoded);
  if (!decodeError && decoded.length <= MAX_ERROR_MESSAGE) return chunk;
  let fixedText = text.replace(/grpc-message: ?[^\r\n]*/i, `grpc-message: ${grpcPercentEncode(clipMessage(decoded))}`);
  if (decodeError) fixedText = fixedText.replace(/grpc-status: ?13\b/i, "grpc-status: 3");
  return Buffer.concat([chunk.subarray(0, at), frameOf(0x80, Buffer.from(fixedText, "latin1"))]);
}

/** Offset of an uncompressed frame with `flags` that ends this chunk, or -1. */
function findFinalFrame(chunk: Uint8Array, flags: number): number {
  let offset = 0;
  while (offset + 5 <= chunk.byteLength) {
    const length = Buffer.from(chunk.buffer, chunk.byteOffset + offset + 1, 4).readUInt32BE(0);
    if (chunk[offset] === flags && offset + 5 + length === chunk.byteLength) return offset;
    offset += 5 + length;
  }
  return -1;
}

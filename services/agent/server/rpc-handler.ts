// The Node request handler for every RPC: connect-node's adapter, plus two
// corrections at the wire.
// - connect-es reports a request body that is not valid protobuf binary as
//   INTERNAL ("parse binary: …"); for callers that is bad input, so it leaves as
//   INVALID_ARGUMENT in all three protocols.
// - connect-es percent-encodes grpc-message with encodeURIComponent, and grpc-js
//   decodes it with decodeURI, so ":" or "," reached grpc-js users as "%3A",
//   "%2C". The gRPC spec asks to encode only "%" and bytes outside 0x20–0x7E,
//   which every client decodes the same; that is what leaves here.
// Everything else is the adapter's own behaviour (connectNodeAdapter in @connectrpc/connect-node).
import { type ConnectRouterOptions, createConnectRouter, type ContextValues, type ConnectRouter } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
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
}

// Also a request body that does not decompress (connect-node answers INTERNAL "decompression
// failed" for some brotli/gzip errors): the bytes are the caller's.
const DECODE_ERROR = /^(?:parse binary: |decompression failed$)/;

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
    const uReq = universalRequestFromNodeRequest(req, res, undefined, options.contextValues?.(req));
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(reclassifyDecodeErrors(uRes), res))
      .catch((error: unknown) => options.onHandlerError?.(error, `${handler.service.typeName}/${handler.method.name}`));
  };
}

/** Rewrites INTERNAL "parse binary: …" errors to INVALID_ARGUMENT, per protocol. */
export function reclassifyDecodeErrors(res: UniversalServerResponse): UniversalServerResponse {
  const contentType = res.header?.get("content-type") ?? "";
  const body = res.body;
  if (!body || body instanceof Uint8Array) return res;
  if (res.status === 500 && contentType.startsWith("application/json")) {
    // Connect unary error: a JSON body. The adapter reads `status` after the first chunk.
    const out = { ...res };
    out.body = connectErrorBody(body, out);
    return out;
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
        trailer.set("grpc-message", grpcPercentEncode(message));
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
export function grpcPercentEncode(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

async function* connectErrorBody(body: AsyncIterable<Uint8Array>, res: UniversalServerResponse): AsyncIterable<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  try {
    const error = JSON.parse(bytes.toString("utf8")) as { code?: string; message?: string };
    if (error.code === "internal" && DECODE_ERROR.test(error.message ?? "")) {
      const fixed = Buffer.from(JSON.stringify({ ...error, code: "invalid_argument" }));
      // The status and length are read when the first chunk is written, after this runs.
      res.status = 400;
      res.header?.set("content-length", String(fixed.byteLength));
      yield fixed;
      return;
    }
  } catch {
    // Not JSON (e.g. compressed): pass through unchanged.
  }
  yield bytes;
}

async function* mapChunks(body: AsyncIterable<Uint8Array>, fn: (chunk: Uint8Array) => Uint8Array): AsyncIterable<Uint8Array> {
  for await (const chunk of body) yield fn(chunk);
}

/** gRPC-Web carries its status in a final frame (flag 0x80, 4-byte length, HTTP-style lines). */
function grpcWebTrailerFrame(chunk: Uint8Array): Uint8Array {
  const at = findTrailerFrame(chunk);
  if (at < 0) return chunk;
  const text = Buffer.from(chunk.subarray(at + 5)).toString("latin1");
  const message = /grpc-message: ?([^\r\n]*)/i.exec(text)?.[1] ?? "";
  if (!/grpc-status: ?13\b/i.test(text) || !DECODE_ERROR.test(decodeURIComponent(message))) return chunk;
  const fixed = Buffer.from(text.replace(/grpc-status: ?13\b/i, "grpc-status: 3"), "latin1");
  const frame = Buffer.alloc(5 + fixed.byteLength);
  frame[0] = 0x80;
  frame.writeUInt32BE(fixed.byteLength, 1);
  fixed.copy(frame, 5);
  return Buffer.concat([chunk.subarray(0, at), frame]);
}

/** Offset of an uncompressed trailer frame that ends this chunk, or -1. */
function findTrailerFrame(chunk: Uint8Array): number {
  let offset = 0;
  while (offset + 5 <= chunk.byteLength) {
    const length = Buffer.from(chunk.buffer, chunk.byteOffset + offset + 1, 4).readUInt32BE(0);
    if (chunk[offset] === 0x80 && offset + 5 + length === chunk.byteLength) return offset;
    offset += 5 + length;
  }
  return -1;
}

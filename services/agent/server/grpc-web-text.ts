// gRPC-Web text (`application/grpc-web-text`): the gRPC-Web binary framing in base64,
// which Google's `grpc-web` client uses by default (and the only mode it streams in).
// connect-node serves only the binary form, so a text request is translated at the
// edge: its body is decoded into binary frames for the handler, and every chunk of
// the response is base64-encoded on its own (padded, as Envoy's grpc_web filter does),
// so that each streamed message reaches the client as soon as it is written.
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";

const TEXT = /^application\/grpc-web-text(\+proto)?$/i;

/** Whether the request uses gRPC-Web text (JSON is not offered in text mode). */
export function isGrpcWebText(contentType: string | null): boolean {
  return contentType !== null && TEXT.test(contentType.trim());
}

/** The request as gRPC-Web binary: content type changed, body base64-decoded as it streams. */
export function grpcWebTextRequest(req: UniversalServerRequest): UniversalServerRequest {
  const header = new Headers(req.header);
  header.set("content-type", "application/grpc-web+proto");
  header.delete("content-length");
  const body = req.body;
  // A request from Node always has a byte stream body; anything else is left to the handler.
  if (body === null || typeof body !== "object" || !(Symbol.asyncIterator in body)) return { ...req, header };
  return { ...req, header, body: decodeBase64Stream(body as AsyncIterable<Uint8Array>) };
}

/** The response as gRPC-Web text: content type changed, each chunk base64-encoded. */
export function grpcWebTextResponse(res: UniversalServerResponse): UniversalServerResponse {
  const contentType = res.header?.get("content-type") ?? "";
  if (!contentType.startsWith("application/grpc-web")) return res;
  const header = new Headers(res.header);
  header.set("content-type", "application/grpc-web-text+proto");
  header.delete("content-length");
  const body = res.body;
  if (body === undefined) return { ...res, header };
  return {
    ...res,
    header,
    body: (async function* () {
      for await (const chunk of body) {
        if (chunk.byteLength > 0) yield new Uint8Array(Buffer.from(Buffer.from(chunk).toString("base64"), "latin1"));
      }
    })(),
  };
}

/**
 * Decodes base64 text that may arrive in any chunking, and may be several padded
 * segments one after another (a client encodes each frame on its own): every complete
 * group of four characters decodes alone, whatever padding it has.
 */
export async function* decodeBase64Stream(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  let pending = "";
  for await (const chunk of body) {
    pending += Buffer.from(chunk).toString("latin1").replace(/\s+/g, "");
    const whole = pending.length - (pending.length % 4);
    if (whole === 0) continue;
    const text = pending.slice(0, whole);
    pending = pending.slice(whole);
    if (!BASE64_GROUPS.test(text))
      throw new ConnectError("the request body is not valid base64 (gRPC-Web text)", Code.InvalidArgument);
    yield new Uint8Array(decodeGroups(text));
  }
  if (pending.length > 0)
    throw new ConnectError("the request body is not valid base64 (gRPC-Web text): truncated", Code.InvalidArgument);
}

const BASE64_GROUPS = /^(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)*$/;

/** Base64 decoding that allows padding at the end of any 4-character group. */
function decodeGroups(text: string): Buffer {
  if (!text.includes("=")) return Buffer.from(text, "base64");
  const parts: Buffer[] = [];
  for (const segment of text.split(/(?<==)(?=[^=])/)) parts.push(Buffer.from(segment, "base64"));
  return Buffer.concat(parts);
}

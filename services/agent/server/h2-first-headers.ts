// Reads the first request of an h2 connection before any server sees it, so that the
// connection router (h2-route.ts) can pick a server by that request's content-type. Pure
// functions over the bytes buffered so far: the HTTP/2 frame layout (RFC 9113 §4.1) and the
// first header block decoded with HPACK from an empty dynamic table (RFC 7541), which is
// what every first header block of a connection is encoded against.
import { createRequire } from "node:module";

// hpack.js is CommonJS without types; only its decompressor is used.
const require = createRequire(import.meta.url);
const hpack = require("hpack.js") as {
  decompressor: { create(opts: { table: { size: number } }): HpackDecompressor };
};
interface HpackDecompressor {
  write(chunk: Buffer): void;
  execute(): void;
  read(): { name: string; value: string } | null;
  once(event: "error", fn: (err: Error) => void): void;
}

/** The 24 bytes every HTTP/2 client connection starts with (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const FRAME_HEADER_BYTES = 9;
const FRAME_HEADERS = 0x1;
const FRAME_SETTINGS = 0x4;
const FRAME_CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** SETTINGS_HEADER_TABLE_SIZE's default: the client's encoder table until the server says otherwise. */
const DEFAULT_HEADER_TABLE_SIZE = 4096;
/**
 * Bytes a client may send before its first header block is complete. Far above any real first
 * request (a SETTINGS frame and a few hundred bytes of headers); a client past it is not routed
 * by its headers.
 */
export const MAX_FIRST_HEADERS_BYTES = 64 * 1024;

/** An empty SETTINGS frame: a valid server preface that announces nothing (all defaults). */
export const EMPTY_SETTINGS_FRAME = Buffer.from([0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);

export type FirstHeaders =
  /** More bytes are needed. */
  | { kind: "incomplete" }
  /** The first request's header fields (names lower case, as HTTP/2 requires). */
  | { kind: "headers"; headers: ReadonlyMap<string, string> }
  /** Not a well-formed start of an HTTP/2 connection; `reason` says why. */
  | { kind: "invalid"; reason: string };

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  /** Offsets of the payload in the buffer. */
  start: number;
  end: number;
}

/** The frames complete in `bytes` after the preface, stopping at the first partial one. */
function* frames(bytes: Buffer): Generator<Frame> {
  let at = H2_PREFACE.length;
  while (bytes.length - at >= FRAME_HEADER_BYTES) {
    const length = bytes.readUIntBE(at, 3);
    const start = at + FRAME_HEADER_BYTES;
    if (bytes.length < start + length) return;
    const streamId = bytes.readUInt32BE(at + 5) & 0x7fffffff;
    yield { type: bytes.readUInt8(at + 3), flags: bytes.readUInt8(at + 4), streamId, start, end: start + length };
    at = start + length;
  }
}

function startsWithPreface(bytes: Buffer): boolean {
  if (bytes.length < H2_PREFACE.length) return false;
  return H2_PREFACE.equals(bytes.subarray(0, H2_PREFACE.length));
}

/**
 * The first request's headers from the bytes a client sent so far (starting with the preface).
 * Frames before the first HEADERS (SETTINGS, WINDOW_UPDATE, PING, PRIORITY) are skipped; a
 * header block split over CONTINUATION frames is joined.
 */
export function readFirstHeaders(bytes: Buffer): FirstHeaders {
  if (!startsWithPreface(bytes)) {
    return bytes.length < H2_PREFACE.length ? { kind: "incomplete" } : { kind: "invalid", reason: "no HTTP/2 preface" };
  }
  const block: Buffer[] = [];
  let streamId = 0;
  for (const frame of frames(bytes)) {
    if (block.length === 0) {
      if (frame.type !== FRAME_HEADERS) {
        if (frame.type === FRAME_CONTINUATION) return { kind: "invalid", reason: "CONTINUATION without HEADERS" };
        continue;
      }
      const fragment = headersFragment(bytes, frame);
      if (typeof fragment === "string") return { kind: "invalid", reason: fragment };
      block.push(fragment);
      streamId = frame.streamId;
    } else {
      // RFC 9113 §6.10: nothing may come between HEADERS and its CONTINUATION frames.
      if (frame.type !== FRAME_CONTINUATION || frame.streamId !== streamId) {
        return { kind: "invalid", reason: "header block interrupted by another frame" };
      }
      block.push(Buffer.from(bytes.subarray(frame.start, frame.end)));
    }
    if (frame.flags & FLAG_END_HEADERS) return decodeBlock(Buffer.concat(block));
  }
  if (bytes.length > MAX_FIRST_HEADERS_BYTES) return { kind: "invalid", reason: "first header block too large" };
  return { kind: "incomplete" };
}

/** A HEADERS frame's header block fragment, without padding and priority fields; or why it is malformed. */
function headersFragment(bytes: Buffer, frame: Frame): Buffer | string {
  if (frame.streamId === 0) return "HEADERS on stream 0";
  let start = frame.start;
  let end = frame.end;
  if (frame.flags & FLAG_PADDED) {
    if (end - start < 1) return "HEADERS padding field missing";
    const padding = bytes.readUInt8(start);
    start += 1;
    end -= padding;
  }
  if (frame.flags & FLAG_PRIORITY) start += 5;
  if (end < start) return "HEADERS padding longer than its payload";
  return Buffer.from(bytes.subarray(start, end));
}

function decodeBlock(block: Buffer): FirstHeaders {
  const decompressor = hpack.decompressor.create({ table: { size: DEFAULT_HEADER_TABLE_SIZE } });
  let failure: Error | undefined;
  decompressor.once("error", (err) => {
    failure = err;
  });
  const headers = new Map<string, string>();
  try {
    decompressor.write(block);
    decompressor.execute();
    for (let field = decompressor.read(); field !== null; field = decompressor.read()) {
      // A repeated field (e.g. cookie) is joined as HTTP does; routing reads single-valued ones.
      const seen = headers.get(field.name);
      headers.set(field.name, seen === undefined ? field.value : `${seen}, ${field.value}`);
    }
  } catch (err) {
    failure = err as Error;
  }
  if (failure) return { kind: "invalid", reason: `header block does not decode: ${failure.message}` };
  return { kind: "headers", headers };
}

/** Whether the client acknowledged a SETTINGS frame (the router's own) in the bytes so far. */
export function hasSettingsAck(bytes: Buffer): boolean {
  if (!startsWithPreface(bytes)) return false;
  for (const frame of frames(bytes)) {
    if (frame.type === FRAME_SETTINGS && frame.flags & FLAG_ACK) return true;
  }
  return false;
}

/**
 * The bytes without the client's first SETTINGS ACK: the router sent those (empty) settings,
 * not the server the bytes are replayed into, which would take the ACK for its own and
 * treat its real settings as acknowledged before the client saw them.
 */
export function withoutFirstSettingsAck(bytes: Buffer): Buffer {
  if (!startsWithPreface(bytes)) return bytes;
  for (const frame of frames(bytes)) {
    if (frame.type === FRAME_SETTINGS && frame.flags & FLAG_ACK) {
      const at = frame.start - FRAME_HEADER_BYTES;
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(frame.end)]);
    }
  }
  return bytes;
}

/** grpc-timeout as the gRPC spec writes it: up to 8 digits and a unit. */
const GRPC_TIMEOUT = /^\d{1,8}[HMSmun]$/;

/**
 * Whether grpc-js serves a request exactly as connect-node would: gRPC with the binary protobuf
 * codec (the adapter's serializers), an uncompressed body (connect-node also takes br, and
 * answers a gzip body that does not inflate with INVALID_ARGUMENT where grpc-js says INTERNAL),
 * and no grpc-timeout, or a valid one (grpc-js answers a malformed one with INTERNAL). Any other
 * request goes to connect-node, which serves every protocol.
 */
export function servedByGrpcJs(header: (name: string) => string | undefined): boolean {
  const contentType = header("content-type");
  if (contentType === undefined) return false;
  const type = (contentType.split(";", 1)[0] ?? "").trim().toLowerCase();
  if (type !== "application/grpc" && type !== "application/grpc+proto") return false;
  const encoding = header("grpc-encoding");
  if (encoding !== undefined && encoding !== "identity") return false;
  const timeout = header("grpc-timeout");
  return timeout === undefined || GRPC_TIMEOUT.test(timeout);
}

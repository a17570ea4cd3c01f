// The fuzz suite's view of the wire: every RPC agentd serves, a raw client for
// each of the four protocols (gRPC, Connect JSON, Connect binary, gRPC-Web)
// that sends exactly the bytes it is given, and one verdict per answer: the
// status code it carries and how many bytes it took.
import * as http from "node:http";
import * as http2 from "node:http2";
import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { AgentService } from "../../gen/agentd/v1/agent_service_pb.js";
import { TaskService } from "../../gen/agentd/v1/task_service_pb.js";
import { WebhookService } from "../../gen/agentd/v1/webhook_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** How many cases each property runs: small in CI, `AGENTD_FUZZ_RUNS` (or `npm run fuzz -- --long`) for deeper runs. */
export const FUZZ_RUNS = Number(process.env.AGENTD_FUZZ_RUNS ?? "") || 40;
/** A long run needs a longer test timeout. */
export const FUZZ_TIMEOUT_MS = Math.max(120_000, FUZZ_RUNS * 400);

/** No answer to a request of a few KB may be larger than this. */
export const MAX_ANSWER_BYTES = 1 << 20;

export interface Rpc {
  path: string;
  method: DescMethod;
  input: DescMessage;
  streaming: boolean;
}

const SERVICES: DescService[] = [
  AgentService,
  TaskService,
  WebhookService,
  Health,
  ServerReflection,
  ServerReflectionAlpha,
];

export const RPCS: Rpc[] = SERVICES.flatMap((service) =>
  service.methods.map((method) => ({
    path: `/${service.typeName}/${method.name}`,
    method,
    input: method.input,
    streaming: method.methodKind !== "unary",
  })),
);

export type WireProtocol = "grpc" | "connect-json" | "connect-proto" | "grpc-web";
export const PROTOCOLS: WireProtocol[] = ["grpc", "connect-json", "connect-proto", "grpc-web"];

export interface Answer {
  /** HTTP status; 0 if the connection broke before one arrived. */
  httpStatus: number;
  /** The RPC status in gRPC's numbering (0 OK … 16), when the answer carried one. */
  code: number | undefined;
  bytes: number;
  /** The client gave up waiting (a stream still open at our deadline): not a failure. */
  timedOut: boolean;
  /** Where it went wrong, for the counterexample. */
  detail: string;
  /** Node's HTTP client refused the request before sending it (e.g. a header HTTP/2 forbids). */
  clientError?: boolean;
}

/** gRPC status numbers from Connect's lower_snake code names. */
const CODES: Record<string, number> = {
  canceled: 1,
  unknown: 2,
  invalid_argument: 3,
  deadline_exceeded: 4,
  not_found: 5,
  already_exists: 6,
  permission_denied: 7,
  resource_exhausted: 8,
  failed_precondition: 9,
  aborted: 10,
  out_of_range: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  data_loss: 15,
  unauthenticated: 16,
};
export const INTERNAL = 13;
export const UNKNOWN = 2;

/** One length-prefixed message (gRPC, gRPC-Web and Connect streaming alike). */
export function envelope(payload: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + payload.byteLength);
  out[0] = flags;
  out.writeUInt32BE(payload.byteLength, 1);
  Buffer.from(payload).copy(out, 5);
  return out;
}

/** The body a client of this protocol would send for one message (or raw bytes, `framed: false`). */
export function requestBody(protocol: WireProtocol, rpc: Rpc, message: Uint8Array, framed = true): Buffer {
  if (!framed) return Buffer.from(message);
  const connectUnary = (protocol === "connect-json" || protocol === "connect-proto") && !rpc.streaming;
  return connectUnary ? Buffer.from(message) : envelope(message);
}

export function contentTypeOf(protocol: WireProtocol, rpc: Rpc): string {
  switch (protocol) {
    case "grpc":
      return "application/grpc+proto";
    case "grpc-web":
      return "application/grpc-web+proto";
    case "connect-json":
      return rpc.streaming ? "application/connect+json" : "application/json";
    case "connect-proto":
      return rpc.streaming ? "application/connect+proto" : "application/proto";
  }
}

export interface SendOptions {
  key?: string | undefined;
  headers?: Record<string, string>;
  contentType?: string;
  /** Client-side cap on waiting; streams are also given a server deadline below it. */
  waitMs?: number;
}

/**
 * Sends one request as the protocol's clients do: gRPC and Connect binary over h2c (one session
 * reused), Connect JSON and gRPC-Web over HTTP/1.1.
 */
export function createWire(baseUrl: string) {
  let session: http2.ClientHttp2Session | undefined;
  const h2 = () => {
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(baseUrl);
      session.on("error", () => {});
    }
    return session;
  };
  const target = new URL(baseUrl);

  function headersFor(protocol: WireProtocol, rpc: Rpc, opts: SendOptions): Record<string, string> {
    const headers: Record<string, string> = { "content-type": opts.contentType ?? contentTypeOf(protocol, rpc) };
    if (protocol === "grpc") {
      headers.te = "trailers";
      headers["grpc-timeout"] = "1500m";
    } else if (protocol === "grpc-web") {
      headers["grpc-timeout"] = "1500m";
    } else {
      headers["connect-protocol-version"] = "1";
      headers["connect-timeout-ms"] = "1500";
    }
    if (opts.key !== undefined) headers.authorization = `Bearer ${opts.key}`;
    return { ...headers, ...opts.headers };
  }

  function send(protocol: WireProtocol, rpc: Rpc, body: Uint8Array, opts: SendOptions = {}): Promise<Answer> {
    const headers = headersFor(protocol, rpc, opts);
    const waitMs = opts.waitMs ?? 8_000;
    return protocol === "grpc" || protocol === "connect-proto"
      ? sendH2(h2(), { ":method": "POST", ":path": rpc.path, ...headers }, body, waitMs).then((raw) =>
          verdict(protocol, rpc, raw),
        )
      : sendH1(target, "POST", rpc.path, headers, body, waitMs).then((raw) => verdict(protocol, rpc, raw));
  }

  return {
    send,
    close() {
      session?.destroy();
    },
  };
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  trailers: Record<string, string | string[] | undefined>;
  body: Buffer;
  timedOut: boolean;
  error?: string;
}

export function sendH2(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
  waitMs: number,
  /** The client stops reading (and cancels the stream) past this many body bytes. */
  maxBytes = MAX_ANSWER_BYTES + 1,
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const out: RawAnswer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0), timedOut: false };
    const chunks: Buffer[] = [];
    let size = 0;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers);
    } catch (error) {
      resolve({ ...out, error: String(error) });
      return;
    }
    const timer = setTimeout(() => {
      out.timedOut = true;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, waitMs);
    stream.on("response", (h) => {
      out.status = Number(h[":status"] ?? 0);
      out.headers = h;
    });
    stream.on("trailers", (t) => {
      out.trailers = t;
    });
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
      else stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.on("error", (error) => {
      out.error = String(error);
    });
    stream.on("close", () => {
      clearTimeout(timer);
      resolve({
        ...out,
        body: Buffer.concat(chunks),
        error: out.error ?? (stream.rstCode ? `RST_STREAM ${stream.rstCode}` : undefined),
      });
    });
    // Node ends a GET or HEAD at its headers (END_STREAM): writing to it then fails the stream,
    // and its answer would be lost.
    if (!stream.writableEnded) stream.end(body);
  });
}

export function sendH1(
  target: URL,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Uint8Array,
  waitMs: number,
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const out: RawAnswer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0), timedOut: false };
    const chunks: Buffer[] = [];
    let size = 0;
    let req: http.ClientRequest;
    try {
      req = http.request({
        host: target.hostname,
        port: target.port,
        method,
        path,
        headers: { ...headers, "content-length": String(body.byteLength) },
        agent: false,
      });
    } catch (error) {
      resolve({ ...out, error: String(error) });
      return;
    }
    const timer = setTimeout(() => {
      out.timedOut = true;
      req.destroy();
    }, waitMs);
    const finish = (error?: string) => {
      clearTimeout(timer);
      resolve({ ...out, body: Buffer.concat(chunks), ...(error ? { error } : {}) });
    };
    req.on("response", (res) => {
      out.status = res.statusCode ?? 0;
      out.headers = res.headers;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_ANSWER_BYTES + 1) chunks.push(chunk);
        else res.destroy();
      });
      res.on("end", () => {
        out.trailers = res.trailers;
        finish();
      });
      res.on("error", (e) => finish(e.message));
      res.on("close", () => finish());
    });
    req.on("error", (e) => finish(e.message));
    req.end(body);
  });
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads the RPC status out of a raw answer, per protocol. */
export function verdict(protocol: WireProtocol, rpc: Rpc, raw: RawAnswer): Answer {
  const base = {
    httpStatus: raw.status,
    bytes: raw.body.byteLength,
    timedOut: raw.timedOut,
    clientError: raw.status === 0 && /ERR_HTTP2_INVALID|ERR_INVALID_|ERR_HTTP_INVALID/.test(raw.error ?? ""),
  };
  const detail = `HTTP ${raw.status} ${raw.error ?? ""} ${raw.body.subarray(0, 300).toString("latin1")}`.trim();
  const grpcStatus = header(raw.trailers, "grpc-status") ?? header(raw.headers, "grpc-status");
  // The answer's own content type says how its status is carried, whatever protocol the fuzzer
  // meant: a fuzzed request may send another protocol's content type to any path.
  const answerType = header(raw.headers, "content-type") ?? "";
  const carrier = carrierOf(answerType) ?? protocol;
  const body = answerType.startsWith("application/grpc-web-text") ? decodeBase64Chunks(raw.body) : raw.body;
  if (carrier === "grpc") {
    return {
      ...base,
      code: grpcStatus === undefined ? undefined : Number(grpcStatus),
      detail: `${detail} grpc-message=${header(raw.trailers, "grpc-message") ?? header(raw.headers, "grpc-message") ?? ""}`,
    };
  }
  if (carrier === "grpc-web") {
    if (grpcStatus !== undefined) return { ...base, code: Number(grpcStatus), detail };
    const trailer = lastFrame(body, 0x80);
    const m = trailer ? /grpc-status: ?(\d+)/i.exec(trailer.toString("latin1")) : null;
    return { ...base, code: m ? Number(m[1]) : undefined, detail: `${detail} ${trailer?.toString("latin1") ?? ""}` };
  }
  // Connect
  const contentType = header(raw.headers, "content-type") ?? "";
  if (rpc.streaming && raw.status === 200 && contentType.startsWith("application/connect+")) {
    const end = lastFrame(raw.body, 0x02);
    if (!end) return { ...base, code: undefined, detail };
    try {
      const parsed = JSON.parse(end.toString("utf8")) as { error?: { code?: string } };
      return {
        ...base,
        code: parsed.error ? (CODES[parsed.error.code ?? ""] ?? UNKNOWN) : 0,
        detail: `${detail} ${end.toString("utf8").slice(0, 300)}`,
      };
    } catch {
      return { ...base, code: UNKNOWN, detail: `unparsable end-stream message ${detail}` };
    }
  }
  if (raw.status === 200) return { ...base, code: 0, detail };
  if (contentType.startsWith("application/json")) {
    try {
      const parsed = JSON.parse(raw.body.toString("utf8")) as { code?: string };
      return { ...base, code: CODES[parsed.code ?? ""] ?? UNKNOWN, detail };
    } catch {
      return { ...base, code: UNKNOWN, detail: `unparsable error ${detail}` };
    }
  }
  return { ...base, code: undefined, detail };
}

/** The protocol an answer's content type names; undefined when it names none. */
function carrierOf(contentType: string): WireProtocol | undefined {
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  if (/^application\/(connect\+|json|proto)/.test(contentType)) return "connect-json";
  return undefined;
}

/** gRPC-Web text: each write is base64 on its own, padding included, so decode chunk by chunk. */
function decodeBase64Chunks(body: Buffer): Buffer {
  const chunks = body.toString("latin1").match(/[A-Za-z0-9+/]+={0,2}/g) ?? [];
  return Buffer.concat(chunks.map((c) => Buffer.from(c, "base64")));
}

/** The payload of the last envelope with this flag bit set, walking the frames from the start. */
function lastFrame(body: Buffer, flag: number): Buffer | undefined {
  let found: Buffer | undefined;
  let offset = 0;
  while (offset + 5 <= body.byteLength) {
    const length = body.readUInt32BE(offset + 1);
    if (offset + 5 + length > body.byteLength) break;
    if ((body[offset]! & flag) === flag) found = body.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
  }
  return found;
}

/**
 * The property every answer must have. A failure (INTERNAL, UNKNOWN, a 5xx, an oversized
 * answer, a broken connection) comes back as a message; undefined when the answer is fine.
 *
 * Where the gRPC spec requires INTERNAL/UNKNOWN it is not the server's choice: a gRPC client
 * maps an HTTP-level refusal (a 4xx without grpc-status, e.g. 415 for a content type that is
 * not gRPC, 400 for a malformed Host) to INTERNAL or UNKNOWN itself (gRPC "HTTP to gRPC status
 * code mapping"). Such answers are judged by their HTTP status here: any 4xx is fine. The one
 * 5xx allowed is 505 for a bidirectional stream over HTTP/1.1, which the Connect protocol
 * specifies (bidi needs HTTP/2).
 */
export function problemWith(answer: Answer, rpc: Rpc, protocol: WireProtocol): string | undefined {
  if (answer.bytes > MAX_ANSWER_BYTES) return `answer of ${answer.bytes} bytes`;
  if (answer.timedOut) return undefined; // a stream still open at the client's deadline
  if (answer.clientError) return undefined; // our own HTTP client refused to send it
  // Bidirectional streams need HTTP/2: the Connect protocol answers 505 on HTTP/1.1.
  if (
    answer.httpStatus === 505 &&
    rpc.method.methodKind === "bidi_streaming" &&
    (protocol === "connect-json" || protocol === "grpc-web")
  )
    return undefined;
  // An RPC code is judged by itself (Connect maps e.g. UNIMPLEMENTED to HTTP 501, UNAVAILABLE to 503).
  if (answer.code !== undefined)
    return answer.code === INTERNAL || answer.code === UNKNOWN ? `code ${answer.code}: ${answer.detail}` : undefined;
  if (answer.httpStatus >= 500) return `HTTP ${answer.httpStatus}: ${answer.detail}`;
  if (answer.httpStatus === 0) return `no answer: ${answer.detail}`;
  if (answer.httpStatus === 200) return `HTTP 200 without a status: ${answer.detail}`;
  return undefined;
}

// The first-HEADERS reader behind the h2 connection router (services/agent/server/h2-first-headers.ts):
// RFC 7541 test vectors, Huffman-coded values, CONTINUATION, padding and priority fields, the
// SETTINGS ACK a client sends for the router's own SETTINGS, and the bytes a real Node http2
// client writes on a loopback socket.
import * as http2 from "node:http2";
import { createRequire } from "node:module";
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import {
  EMPTY_SETTINGS_FRAME,
  H2_PREFACE,
  hasSettingsAck,
  readFirstHeaders,
  servedByGrpcJs,
  withoutFirstSettingsAck,
} from "../../services/agent/server/h2-first-headers.js";

const require = createRequire(import.meta.url);
const hpack = require("hpack.js") as {
  compressor: {
    create(opts: { table: { size: number } }): {
      write(headers: Array<{ name: string; value: string; huffman?: boolean }>): void;
      read(): Buffer | null;
    };
  };
};

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

function encode(fields: Array<[string, string]>, huffman = true): Buffer {
  const compressor = hpack.compressor.create({ table: { size: 4096 } });
  compressor.write(fields.map(([name, value]) => ({ name, value, huffman })));
  const out: Buffer[] = [];
  for (let chunk = compressor.read(); chunk !== null; chunk = compressor.read()) out.push(chunk);
  return Buffer.concat(out);
}

const CLIENT_SETTINGS = frame(4, 0, 0, Buffer.from([0, 2, 0, 0, 0, 0])); // ENABLE_PUSH = 0
const SETTINGS_ACK = frame(4, 1, 0, Buffer.alloc(0));
const WINDOW_UPDATE = frame(8, 0, 0, Buffer.from([0, 0, 0x10, 0]));
const GRPC_REQUEST: Array<[string, string]> = [
  [":method", "POST"],
  [":scheme", "http"],
  [":path", "/agentd.v1.AgentService/CreateTask"],
  [":authority", "127.0.0.1:5000"],
  ["content-type", "application/grpc+proto"],
  ["te", "trailers"],
];

function headersOf(bytes: Buffer): ReadonlyMap<string, string> {
  const result = readFirstHeaders(bytes);
  if (result.kind !== "headers") throw new Error(`expected headers, got ${JSON.stringify(result)}`);
  return result.headers;
}

describe("readFirstHeaders", () => {
  it("decodes the RFC 7541 C.4.1 request (Huffman-coded authority)", () => {
    const block = Buffer.from("828684418cf1e3c2e5f23a6ba0ab90f4ff", "hex");
    const headers = headersOf(Buffer.concat([H2_PREFACE, CLIENT_SETTINGS, frame(1, 0x4 | 0x1, 1, block)]));
    expect(Object.fromEntries(headers)).toEqual({
      ":method": "GET",
      ":scheme": "http",
      ":path": "/",
      ":authority": "www.example.com",
    });
  });

  it("reads a Huffman-coded gRPC content-type after SETTINGS and WINDOW_UPDATE", () => {
    const block = encode(GRPC_REQUEST, true);
    expect(block.includes(Buffer.from("application/grpc"))).toBe(false); // really Huffman-coded
    const bytes = Buffer.concat([H2_PREFACE, CLIENT_SETTINGS, WINDOW_UPDATE, frame(1, 0x4, 1, block)]);
    expect(headersOf(bytes).get("content-type")).toBe("application/grpc+proto");
    expect(headersOf(Buffer.concat([H2_PREFACE, frame(1, 0x4, 1, encode(GRPC_REQUEST, false))])).get(":path")).toBe(
      "/agentd.v1.AgentService/CreateTask",
    );
  });

  it("joins a header block split over CONTINUATION frames, and waits for the last one", () => {
    const block = encode(GRPC_REQUEST);
    const parts = [block.subarray(0, 5), block.subarray(5, 20), block.subarray(20)] as const;
    const first = Buffer.concat([H2_PREFACE, CLIENT_SETTINGS, frame(1, 0, 3, parts[0]), frame(9, 0, 3, parts[1])]);
    expect(readFirstHeaders(first).kind).toBe("incomplete");
    const bytes = Buffer.concat([first, frame(9, 0x4, 3, parts[2])]);
    expect(headersOf(bytes).get("content-type")).toBe("application/grpc+proto");
  });

  it("skips padding and priority fields of HEADERS", () => {
    const block = encode(GRPC_REQUEST);
    const payload = Buffer.concat([Buffer.from([3]), Buffer.from([0, 0, 0, 0, 15]), block, Buffer.alloc(3)]);
    const bytes = Buffer.concat([H2_PREFACE, frame(1, 0x4 | 0x8 | 0x20, 1, payload)]);
    expect(headersOf(bytes).get("te")).toBe("trailers");
  });

  it("is incomplete at every split point of a request until its header block ends", () => {
    const bytes = Buffer.concat([H2_PREFACE, CLIENT_SETTINGS, frame(1, 0x4, 1, encode(GRPC_REQUEST))]);
    for (let n = 0; n < bytes.length; n++) expect(readFirstHeaders(bytes.subarray(0, n)).kind).toBe("incomplete");
    expect(readFirstHeaders(bytes).kind).toBe("headers");
  });

  it("names what is wrong with bytes that are not a well-formed connection start", () => {
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), /preface/],
      [Buffer.concat([H2_PREFACE, frame(9, 0x4, 1, Buffer.from([0x82]))]), /CONTINUATION without HEADERS/],
      [Buffer.concat([H2_PREFACE, frame(1, 0, 1, Buffer.from([0x82])), WINDOW_UPDATE]), /interrupted/],
      [Buffer.concat([H2_PREFACE, frame(1, 0x4, 0, Buffer.from([0x82]))]), /stream 0/],
      [Buffer.concat([H2_PREFACE, frame(1, 0x4 | 0x8, 1, Buffer.from([9, 0x82]))]), /padding/],
      [Buffer.concat([H2_PREFACE, frame(1, 0x4, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]))]), /decode/],
      [Buffer.concat([H2_PREFACE, frame(0, 0, 1, Buffer.alloc(70_000))]), /too large/],
    ];
    for (const [bytes, reason] of cases) {
      const result = readFirstHeaders(bytes);
      expect(result.kind, reason.source).toBe("invalid");
      if (result.kind === "invalid") expect(result.reason).toMatch(reason);
    }
  });
});

describe("the router's own SETTINGS", () => {
  it("is an empty SETTINGS frame", () => {
    expect(EMPTY_SETTINGS_FRAME).toEqual(frame(4, 0, 0, Buffer.alloc(0)));
  });

  it("has its ACK found and removed once, whatever comes around it", () => {
    const headers = frame(1, 0x4, 1, encode(GRPC_REQUEST));
    const before = Buffer.concat([H2_PREFACE, CLIENT_SETTINGS, SETTINGS_ACK, headers]);
    expect(hasSettingsAck(before)).toBe(true);
    expect(withoutFirstSettingsAck(before)).toEqual(Buffer.concat([H2_PREFACE, CLIENT_SETTINGS, headers]));
    const after = Buffer.concat([H2_PREFACE, CLIENT_SETTINGS, headers, SETTINGS_ACK, SETTINGS_ACK]);
    expect(withoutFirstSettingsAck(after)).toEqual(Buffer.concat([H2_PREFACE, CLIENT_SETTINGS, headers, SETTINGS_ACK]));
    const none = Buffer.concat([H2_PREFACE, CLIENT_SETTINGS, headers]);
    expect(hasSettingsAck(none)).toBe(false);
    expect(withoutFirstSettingsAck(none)).toBe(none);
  });
});

describe("servedByGrpcJs", () => {
  const served = (headers: Record<string, string>) => servedByGrpcJs((name) => headers[name]);
  it("takes uncompressed binary gRPC with no or a valid grpc-timeout", () => {
    for (const type of ["application/grpc", "application/grpc+proto", "Application/GRPC+Proto; charset=utf-8"]) {
      expect(served({ "content-type": type }), type).toBe(true);
    }
    expect(
      served({ "content-type": "application/grpc", "grpc-encoding": "identity", "grpc-timeout": "99999999S" }),
    ).toBe(true);
    expect(served({ "content-type": "application/grpc", "grpc-timeout": "1m" })).toBe(true);
  });
  it("leaves gRPC-Web, Connect, other gRPC codecs, compressed bodies and malformed timeouts to connect-node", () => {
    for (const type of [
      "",
      "application/grpc-web",
      "application/grpc-web+proto",
      "application/proto",
      "application/grpc+json",
    ]) {
      expect(served({ "content-type": type }), type).toBe(false);
    }
    expect(served({})).toBe(false);
    for (const encoding of ["gzip", "br", "deflate", ""]) {
      expect(served({ "content-type": "application/grpc", "grpc-encoding": encoding }), encoding).toBe(false);
    }
    for (const timeout of ["", "1", "-1S", "999999999S", "1 S", "1s", "xyz"]) {
      expect(served({ "content-type": "application/grpc", "grpc-timeout": timeout }), timeout).toBe(false);
    }
  });
});

describe("a real Node http2 client", () => {
  it("is read up to its first request, also when it waits for the server's SETTINGS first", async () => {
    const received: Buffer[] = [];
    let settingsSent = false;
    const done = new Promise<ReadonlyMap<string, string>>((resolve) => {
      const server = net.createServer((socket) => {
        socket.on("data", (chunk) => {
          received.push(chunk);
          const bytes = Buffer.concat(received);
          if (!settingsSent && bytes.length >= H2_PREFACE.length) {
            settingsSent = true;
            socket.write(EMPTY_SETTINGS_FRAME); // as the router does
          }
          const result = readFirstHeaders(bytes);
          if (result.kind === "headers") {
            socket.destroy();
            server.close();
            resolve(result.headers);
          }
        });
      });
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as net.AddressInfo;
        const client = http2.connect(`http://127.0.0.1:${port}`);
        client.on("error", () => {});
        // Sent only once the client saw the server's SETTINGS, as some clients do.
        client.once("remoteSettings", () => {
          const req = client.request({
            ":method": "POST",
            ":path": "/agentd.v1.AgentService/GetTask",
            "content-type": "application/grpc",
            "grpc-timeout": "5S",
          });
          req.on("error", () => {});
          req.on("close", () => client.close());
        });
      });
    });
    const headers = await done;
    expect(headers.get("content-type")).toBe("application/grpc");
    expect(headers.get(":path")).toBe("/agentd.v1.AgentService/GetTask");
    expect(hasSettingsAck(Buffer.concat(received))).toBe(true);
  });
});

// Fuzz suite (issue 7, part 5): property tests over every RPC in the four
// protocols, plus SSE and raw HTTP. Properties: no answer is INTERNAL/UNKNOWN
// or 5xx (see problemWith for where the gRPC spec decides instead), every
// answer is bounded in size, and the server still answers health afterwards.
// The server runs in this process: an exception that escaped a handler would
// fail the run as an unhandled error, and health after every property shows
// the server still serves. A crash of a real process is covered by
// test/protocols/crash-requests.test.ts.
//
// Bounded for CI (FUZZ_RUNS cases per property); deeper: `npm run fuzz -- --long`
// or AGENTD_FUZZ_RUNS=5000.
import { readdirSync } from "node:fs";
import * as http2 from "node:http2";
import { join } from "node:path";
import { create, fromJson, toBinary } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateTaskRequestSchema } from "../../gen/agentd/v1/task_service_pb.js";
import { CONSOLE_DIST } from "../../services/agent/server/console.js";
import { buildConsoleIfStale } from "../../services/agent/server/console-build.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { value } from "../support/json.js";
import { healthOk, rawExchange, statusOf } from "./child.js";
import {
  headerArb,
  methodArb,
  pathArb,
  payloadArb,
  protocolArb,
  routeArb,
  routeHeaderArb,
  routePaths,
  rpcArb,
} from "./inputs.js";
import {
  createWire,
  FUZZ_RUNS,
  FUZZ_TIMEOUT_MS,
  MAX_ANSWER_BYTES,
  PROTOCOLS,
  problemWith,
  RPCS,
  type Rpc,
  sendH2,
  type WireProtocol,
} from "./wire.js";

let agentd: TestAgentd;
let wire: ReturnType<typeof createWire>;

beforeAll(async () => {
  agentd = await startAgentd();
  wire = createWire(agentd.url);
});

afterAll(async () => {
  wire?.close();
  await agentd?.close();
});

const keyArb = fc.constantFrom<"valid" | "none" | "garbage">("valid", "valid", "none", "garbage");
const keyFor = (which: "valid" | "none" | "garbage") =>
  which === "valid" ? agentd.key : which === "garbage" ? "agentd_not-a-real-key" : undefined;

async function expectHealthy() {
  expect(await healthOk(agentd.url)).toBe(true);
}

describe("every RPC in every protocol", () => {
  it("answers an empty and a junk message without INTERNAL, UNKNOWN or 5xx", { timeout: FUZZ_TIMEOUT_MS }, async () => {
    const problems: string[] = [];
    for (const rpc of RPCS) {
      for (const protocol of PROTOCOLS) {
        for (const body of [new Uint8Array(0), Buffer.from("\x0a\x05hello\x12", "latin1")]) {
          const answer = await wire.send(protocol, rpc, protocolBody(protocol, rpc, body), { key: agentd.key });
          const problem = problemWith(answer, rpc, protocol);
          if (problem) problems.push(`${protocol} ${rpc.path} (${body.length} bytes): ${problem}`);
        }
      }
    }
    expect(problems).toEqual([]);
    await expectHealthy();
  });

  it("answers arbitrary and adversarial messages without INTERNAL, UNKNOWN or 5xx, bounded in size", {
    timeout: FUZZ_TIMEOUT_MS,
  }, async () => {
    const caseArb = fc.tuple(rpcArb, protocolArb).chain(([rpc, protocol]) =>
      fc.record({
        rpc: fc.constant(rpc),
        protocol: fc.constant(protocol),
        payload: payloadArb(rpc, protocol),
        key: keyArb,
      }),
    );
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ rpc, protocol, payload, key }) => {
        const answer = await wire.send(protocol, rpc, protocolBody(protocol, rpc, payload.bytes), { key: keyFor(key) });
        const problem = problemWith(answer, rpc, protocol);
        if (problem) throw new Error(`${protocol} ${rpc.path} ${payload.kind}: ${problem}`);
      }),
      { numRuns: FUZZ_RUNS * 4, maxSkipsPerRun: 1_000 },
    );
    await expectHealthy();
  });

  it("answers hostile headers (encodings, timeouts, content types) without INTERNAL, UNKNOWN or 5xx", {
    timeout: FUZZ_TIMEOUT_MS,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        rpcArb,
        protocolArb,
        headerArb,
        fc.uint8Array({ maxLength: 64 }),
        async (rpc, protocol, headers, bytes) => {
          const answer = await wire.send(protocol, rpc, protocolBody(protocol, rpc, bytes), {
            key: agentd.key,
            headers,
          });
          const problem = problemWith(answer, rpc, protocol);
          if (problem) throw new Error(`${protocol} ${rpc.path} headers ${JSON.stringify(headers)}: ${problem}`);
        },
      ),
      { numRuns: FUZZ_RUNS * 2, maxSkipsPerRun: 1_000 },
    );
    await expectHealthy();
  });
});

describe("found by the fuzzer", () => {
  const listAgents = RPCS.find((r) => r.path === "/agentd.v1.AgentService/ListAgents")!;

  it("a request body that does not decompress is INVALID_ARGUMENT in every protocol", { timeout: 30_000 }, async () => {
    const junk = Buffer.from([0]);
    const compressedFrame = Buffer.concat([Buffer.from([1, 0, 0, 0, 1]), junk]); // flag 1: compressed
    const answers = [
      await wire.send("connect-json", listAgents, junk, { key: agentd.key, headers: { "content-encoding": "br" } }),
      await wire.send("connect-proto", listAgents, junk, { key: agentd.key, headers: { "content-encoding": "gzip" } }),
      await wire.send("grpc", listAgents, compressedFrame, { key: agentd.key, headers: { "grpc-encoding": "br" } }),
      await wire.send("grpc-web", listAgents, compressedFrame, {
        key: agentd.key,
        headers: { "grpc-encoding": "gzip" },
      }),
    ];
    expect(answers.map((a) => a.code)).toEqual([3, 3, 3, 3]);
  });

  it("a gRPC stream request that says it is Connect JSON is answered by Connect with INVALID_ARGUMENT", {
    timeout: 30_000,
  }, async () => {
    const converse = RPCS.find((r) => r.path === "/agentd.v1.AgentService/Converse")!;
    const emptyFrame = new Uint8Array(5);
    const answer = await wire.send("grpc", converse, emptyFrame, {
      key: agentd.key,
      headers: { "content-type": "application/connect+json" },
    });
    expect(answer.code).toBe(3);
  });

  it("a gRPC request that says it is gRPC-Web text is answered in gRPC-Web text with INVALID_ARGUMENT", {
    timeout: 30_000,
  }, async () => {
    const emptyFrame = new Uint8Array(5); // not base64, as the fuzzer sent it
    const answer = await wire.send("grpc", listAgents, emptyFrame, {
      key: agentd.key,
      headers: { "content-type": "application/grpc-web-text" },
    });
    expect(answer.code).toBe(3);
  });
});

/** The body for one message; a Connect JSON call of a streaming RPC still needs an envelope. */
function protocolBody(protocol: WireProtocol, rpc: Rpc, bytes: Uint8Array): Uint8Array {
  const connectUnary = (protocol === "connect-json" || protocol === "connect-proto") && !rpc.streaming;
  if (connectUnary) return bytes;
  const out = Buffer.alloc(5 + bytes.byteLength);
  out.writeUInt32BE(bytes.byteLength, 1);
  Buffer.from(bytes).copy(out, 5);
  return out;
}

/**
 * A 5xx over raw HTTP/1.1 is fine only as the protocol specifies it: a Connect error whose code
 * is not INTERNAL/UNKNOWN (e.g. UNIMPLEMENTED is 501), or 505 for a bidi stream (needs HTTP/2).
 */
function allowedHttp1Error(path: string, status: number, data: Buffer): boolean {
  const rpc = RPCS.find((r) => r.path === path.split("?")[0]);
  if (status === 505 && rpc?.method.methodKind === "bidi_streaming") return true;
  const body = data.subarray(data.indexOf("\r\n\r\n") + 4).toString("utf8");
  const code = /^\s*\{"code":"([a-z_]+)"/.exec(body)?.[1];
  return code !== undefined && code !== "internal" && code !== "unknown";
}

describe("raw HTTP: methods, paths and headers", () => {
  it("HTTP/1.1: any method, path and headers get an answer below 500, bounded in size", {
    timeout: FUZZ_TIMEOUT_MS,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        methodArb,
        pathArb,
        headerArb,
        fc.uint8Array({ maxLength: 128 }),
        fc.boolean(),
        async (method, path, headers, body, withKey) => {
          const lines = [
            `${method} ${path} HTTP/1.1`,
            "host: fuzz",
            "connection: close",
            `content-length: ${body.byteLength}`,
          ];
          for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
          if (withKey && !("authorization" in headers)) lines.push(`authorization: Bearer ${agentd.key}`);
          const request = Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), body]);
          // An SSE stream that opens stays open: the client closes it after a while.
          const { data } = await rawExchange(agentd.port, request, {
            timeoutMs: 3_000,
            maxBytes: MAX_ANSWER_BYTES + 1,
          });
          const status = statusOf(data);
          if ((status >= 500 && !allowedHttp1Error(path, status, data)) || data.byteLength > MAX_ANSWER_BYTES) {
            throw new Error(
              `${method} ${path} ${JSON.stringify(headers)}: HTTP ${status}, ${data.byteLength} bytes: ${data.subarray(0, 300).toString("latin1")}`,
            );
          }
        },
      ),
      { numRuns: FUZZ_RUNS * 2 },
    );
    await expectHealthy();
  });

  it("HTTP/2: any method, path and headers get an answer below 500 (or a stream reset), bounded in size", {
    timeout: FUZZ_TIMEOUT_MS,
  }, async () => {
    const session = http2.connect(agentd.url);
    session.on("error", () => {});
    try {
      await fc.assert(
        fc.asyncProperty(
          methodArb,
          pathArb,
          headerArb,
          fc.uint8Array({ maxLength: 128 }),
          fc.boolean(),
          async (method, path, headers, body, withKey) => {
            const h: http2.OutgoingHttpHeaders = { ":method": method, ":path": path, ...headers };
            if (withKey && !("authorization" in headers)) h.authorization = `Bearer ${agentd.key}`;
            const raw = await sendH2(
              session,
              h,
              method === "GET" || method === "HEAD" ? new Uint8Array(0) : body,
              3_000,
            );
            if (raw.status >= 500 || raw.body.byteLength > MAX_ANSWER_BYTES) {
              throw new Error(
                `${method} ${path} ${JSON.stringify(headers)}: HTTP ${raw.status}: ${raw.body.subarray(0, 300).toString("latin1")}`,
              );
            }
            const grpcStatus = raw.trailers["grpc-status"] ?? raw.headers["grpc-status"];
            if (grpcStatus === "13" || grpcStatus === "2")
              throw new Error(`${method} ${path} ${JSON.stringify(headers)}: grpc-status ${grpcStatus}`);
          },
        ),
        { numRuns: FUZZ_RUNS * 2 },
      );
    } finally {
      session.destroy();
    }
    await expectHealthy();
  });

  it("a connection of random bytes is answered or closed, and the server goes on", {
    timeout: FUZZ_TIMEOUT_MS,
  }, async () => {
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.uint8Array({ maxLength: 256 }), async (asH2, bytes) => {
        const { data } = await rawExchange(agentd.port, asH2 ? Buffer.concat([preface, bytes]) : bytes, {
          timeoutMs: 1_000,
          end: true,
        });
        if (!asH2 && statusOf(data) >= 500)
          throw new Error(`HTTP ${statusOf(data)} for ${Buffer.from(bytes).toString("hex")}`);
      }),
      { numRuns: FUZZ_RUNS },
    );
    await expectHealthy();
  });
});

/**
 * The one port's HTTP routes besides the RPCs: probes, API docs, the console's static files and a
 * real task's SSE stream (one finished, one still running), with hostile methods, paths,
 * percent-encoding, queries and headers, over HTTP/1.1 and HTTP/2. Never a 5xx, never more than
 * MAX_ANSWER_BYTES, and the server answers health afterwards.
 */
describe("raw HTTP: every route of the one port", () => {
  let doneId: string;
  let liveId: string;
  let asset: string;
  let session: http2.ClientHttp2Session;

  beforeAll(async () => {
    // The console's real files (npm ci builds them; a checkout without a build gets one here).
    await buildConsoleIfStale();
    asset = `/assets/${readdirSync(join(CONSOLE_DIST, "assets"))[0]}`;
    const done = await agentd.client.agents.run({ agent: "simulate", input: value({ steps: 2 }) });
    doneId = done.task!.id;
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 1, step_delay_ms: 600_000 }),
    });
    liveId = task!.id;
    session = http2.connect(agentd.url);
    session.on("error", () => {});
  }, 120_000);

  afterAll(async () => {
    session?.destroy();
    if (liveId) await agentd.client.tasks.cancelTask({ taskId: liveId });
  });

  const routes = () => routePaths([doneId, liveId], [asset]);
  // A static file is as large as it is (swagger-ui-bundle.js is 1.7 MB) whatever was asked;
  // every other answer is held to MAX_ANSWER_BYTES.
  const MAX_FILE_BYTES = 4 << 20;
  const isStaticFile = (head: string) => /(text\/javascript|text\/css)/i.test(head);
  const tooLarge = (a: { bytes: number; head: string }) =>
    a.bytes > (isStaticFile(a.head) ? MAX_FILE_BYTES : MAX_ANSWER_BYTES);
  // A running task's stream stays open: the client closes it after a short while.
  const waitFor = (path: string) => (path.includes(liveId) ? 1_000 : 3_000);

  async function overHttp1(
    method: string,
    path: string,
    headers: Record<string, string>,
    withKey: boolean,
    http10 = false,
  ) {
    // HTTP/1.0 without a Host header once crashed the Connect adapter (issue 7, part 1).
    const lines = http10
      ? [`${method} ${path} HTTP/1.0`, "content-length: 0"]
      : [`${method} ${path} HTTP/1.1`, "host: fuzz", "connection: close", "content-length: 0"];
    for (const [name, v] of Object.entries(headers)) lines.push(`${name}: ${v}`);
    if (withKey && !("authorization" in headers)) lines.push(`authorization: Bearer ${agentd.key}`);
    const { data } = await rawExchange(agentd.port, Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), {
      timeoutMs: waitFor(path),
      maxBytes: MAX_FILE_BYTES + 1,
    });
    const head = data.subarray(0, data.indexOf("\r\n\r\n") + 1).toString("latin1");
    return { status: statusOf(data), bytes: data.byteLength, head, text: data.subarray(0, 300).toString("latin1") };
  }

  async function overHttp2(method: string, path: string, headers: Record<string, string>, withKey: boolean) {
    const h: http2.OutgoingHttpHeaders = { ":method": method, ":path": path, ...headers };
    // Node's HTTP/2 client refuses to send any other `te` (a connection header in HTTP/1.1).
    if ("te" in h) h.te = "trailers";
    if (withKey && !("authorization" in headers)) h.authorization = `Bearer ${agentd.key}`;
    const raw = await sendH2(session, h, new Uint8Array(0), waitFor(path), MAX_FILE_BYTES + 1);
    const head = JSON.stringify(raw.headers);
    return { status: raw.status, bytes: raw.body.byteLength, head, text: raw.body.subarray(0, 300).toString("latin1") };
  }

  it("each route, plainly asked, is served (so the fuzzing below reaches real handlers)", {
    timeout: 60_000,
  }, async () => {
    for (const send of [overHttp1, overHttp2]) {
      for (const path of routes()) {
        const answer = await send("GET", path, {}, true);
        expect(answer.status, `${send.name} GET ${path}: ${answer.text}`).toBeLessThan(500);
        expect(tooLarge(answer), `${send.name} GET ${path}: ${answer.bytes} bytes`).toBe(false);
      }
      expect((await send("GET", "/healthz", {}, false)).status).toBe(200);
      expect((await send("GET", "/readyz", {}, false)).status).toBe(200);
      expect((await send("GET", "/openapi.json", {}, false)).status).toBe(200);
      expect((await send("GET", "/docs", {}, false)).status).toBe(200);
      expect((await send("GET", "/", {}, false)).status).toBe(200);
      expect((await send("GET", asset, {}, false)).status).toBe(200);
      const finished = await send("GET", `/v1/tasks/${doneId}/events`, {}, true);
      expect(finished.status).toBe(200);
      expect(finished.head).toContain("text/event-stream");
      expect(finished.bytes).toBeGreaterThan(100); // its events, replayed
      const running = await send("GET", `/v1/tasks/${liveId}/events`, {}, true);
      expect(running.status).toBe(200);
      expect(running.head).toContain("text/event-stream");
    }
  });

  it("any method, path, query and headers on a route get an answer below 500, bounded in size", {
    timeout: FUZZ_TIMEOUT_MS,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(overHttp1, overHttp2),
        // Mostly the methods the routes serve, so most cases get past the method check.
        fc.oneof({ weight: 2, arbitrary: fc.constantFrom("GET", "HEAD") }, { weight: 1, arbitrary: methodArb }),
        fc.constant(null).chain(() => routeArb([doneId, liveId], [asset])),
        routeHeaderArb,
        fc.boolean(),
        fc.boolean(),
        async (send, method, path, headers, withKey, http10) => {
          const answer = await send(method, path, headers, withKey, http10);
          if (answer.status >= 500 || tooLarge(answer)) {
            throw new Error(
              `${send.name} ${method} ${path} ${JSON.stringify(headers)}: HTTP ${answer.status}, ${answer.bytes} bytes: ${answer.text}`,
            );
          }
        },
      ),
      { numRuns: FUZZ_RUNS * 4 },
    );
    expect((await overHttp1("GET", "/healthz", {}, false)).status).toBe(200);
    expect((await overHttp2("GET", `/v1/tasks/${doneId}/events`, {}, true)).status).toBe(200);
    await expectHealthy();
  });
});

/** Each known cause of bad input that once reached INTERNAL, sent on purpose in every protocol it can travel in. */
describe("bad input that once reached INTERNAL", () => {
  const rpc = (path: string) => RPCS.find((r) => r.path === path)!;
  const createTask = rpc("/agentd.v1.TaskService/CreateTask");
  const listTasks = rpc("/agentd.v1.TaskService/ListTasks");
  const watchTask = rpc("/agentd.v1.TaskService/WatchTask");
  const waitTask = rpc("/agentd.v1.TaskService/WaitTask");
  const binaryValue = (value: unknown) =>
    toBinary(CreateTaskRequestSchema, fromJson(CreateTaskRequestSchema, { agent: "simulate", input: value as never }));

  const cases: Array<{ name: string; rpc: Rpc; protocols: WireProtocol[]; body: Uint8Array }> = [
    {
      name: "Value with no kind (binary)",
      rpc: createTask,
      protocols: ["grpc", "connect-proto", "grpc-web"],
      body: Buffer.from("\x0a\x08simulate\x12\x00", "latin1"),
    },
    {
      name: "NaN in a Value (binary)",
      rpc: createTask,
      protocols: ["grpc", "connect-proto", "grpc-web"],
      body: Buffer.concat([
        Buffer.from("\x0a\x08simulate\x12\x09\x11", "latin1"),
        Buffer.from(new Float64Array([Number.NaN]).buffer),
      ]),
    },
    {
      name: "JSON 1e400",
      rpc: createTask,
      protocols: ["connect-json"],
      body: Buffer.from('{"agent":"simulate","input":{"x":1e400}}'),
    },
    {
      name: "U+0000 in a label",
      rpc: createTask,
      protocols: ["connect-json"],
      body: Buffer.from('{"agent":"simulate","labels":{"a":"b\\u0000"}}'),
    },
    {
      name: "U+0000 in an input string",
      rpc: createTask,
      protocols: ["grpc", "connect-proto"],
      body: binaryValue({ text: "a\u0000b" }),
    },
    {
      name: "a lone surrogate in JSON",
      rpc: createTask,
      protocols: ["connect-json"],
      body: Buffer.from('{"agent":"simulate","input":{"text":"\\ud800"}}'),
    },
    {
      name: "a forged page token",
      rpc: listTasks,
      protocols: ["connect-json"],
      body: Buffer.from(`{"page_token":"${Buffer.from('{"t":"x","i":"not-a-uuid"}').toString("base64url")}"}`),
    },
    {
      name: "after_sequence beyond the database's range",
      rpc: watchTask,
      protocols: ["connect-json"],
      body: Buffer.from('{"task_id":"0190f9a4-1111-7000-8000-000000000000","after_sequence":"9223372036854775807"}'),
    },
    {
      name: "undecodable binary on a stream",
      rpc: watchTask,
      protocols: ["connect-proto", "grpc", "grpc-web"],
      body: Buffer.from([0x0a, 0xff, 0xff]),
    },
    {
      name: "a Duration with nanos out of range",
      rpc: waitTask,
      protocols: ["connect-proto", "grpc"],
      body: Buffer.from("\x0a\x01x\x12\x06\x10\x80\xa8\xd6\xb9\x07", "latin1"),
    },
  ];

  for (const c of cases) {
    for (const protocol of c.protocols) {
      it(`${c.name} over ${protocol} is not INTERNAL`, { timeout: 30_000 }, async () => {
        const answer = await wire.send(protocol, c.rpc, protocolBody(protocol, c.rpc, c.body), { key: agentd.key });
        expect(problemWith(answer, c.rpc, protocol)).toBeUndefined();
      });
    }
  }

  it("a Value nested beyond the input depth limit (binary) is INVALID_ARGUMENT", { timeout: 30_000 }, async () => {
    // 70 JSON levels are 140 message levels: past the binary decoder's own limit of 100.
    let value = create(ValueSchema, { kind: { case: "numberValue", value: 1 } });
    for (let i = 0; i < 70; i++)
      value = create(ValueSchema, { kind: { case: "listValue", value: { values: [value] } } });
    const body = toBinary(
      CreateTaskRequestSchema,
      create(CreateTaskRequestSchema, { agent: "simulate", input: value }),
    );
    const answer = await wire.send("connect-proto", createTask, body, { key: agentd.key });
    expect(answer.code).toBe(3);
  });

  it("leaves the server healthy", async () => {
    await expectHealthy();
  });
});

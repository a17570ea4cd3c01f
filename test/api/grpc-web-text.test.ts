// gRPC-Web text (application/grpc-web-text): hand-built base64 frames over fetch, unary and
// server streaming, as Google's grpc-web client sends them.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GetAgentRequestSchema,
  GetAgentResponseSchema,
  RunStreamRequestSchema,
  RunStreamResponseSchema,
} from "../../gen/agentd/v1/agent_service_pb.js";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { decodeBase64Stream } from "../../services/agent/server/grpc-web-text.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { value } from "../support/json.js";

let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd();
});
afterAll(async () => {
  await agentd?.close();
});

function frame(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}

/** A response's frames: every padded base64 group decoded on its own, then split into frames. */
function parseFrames(text: string): { messages: Uint8Array[]; trailer: Record<string, string> } {
  const bytes = Buffer.concat(
    text
      .match(/[^=]*=*/g)!
      .filter(Boolean)
      .map((s) => Buffer.from(s, "base64")),
  );
  const messages: Uint8Array[] = [];
  const trailer: Record<string, string> = {};
  for (let at = 0; at + 5 <= bytes.byteLength; ) {
    const length = bytes.readUInt32BE(at + 1);
    const data = bytes.subarray(at + 5, at + 5 + length);
    if (bytes[at] === 0x80) {
      for (const line of data.toString("latin1").split("\r\n")) {
        const m = /^([^:]+):\s*(.*)$/.exec(line);
        if (m) trailer[m[1]!.toLowerCase()] = m[2]!;
      }
    } else messages.push(new Uint8Array(data));
    at += 5 + length;
  }
  return { messages, trailer };
}

const call = (method: string, body: string, key = agentd.key) =>
  fetch(`${agentd.url}/agentd.v1.AgentService/${method}`, {
    method: "POST",
    headers: {
      "content-type": "application/grpc-web-text",
      accept: "application/grpc-web-text",
      "x-grpc-web": "1",
      authorization: `Bearer ${key}`,
    },
    body,
  });

describe("gRPC-Web text", () => {
  it("unary: a base64 request is answered in base64 with the message and an OK trailer", async () => {
    const request = frame(0, toBinary(GetAgentRequestSchema, create(GetAgentRequestSchema, { name: "simulate" })));
    const res = await call("GetAgent", request.toString("base64"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/grpc-web-text+proto");
    const text = await res.text();
    expect(text).toMatch(/^[A-Za-z0-9+/=]+$/);
    const { messages, trailer } = parseFrames(text);
    expect(trailer["grpc-status"]).toBe("0");
    expect(fromBinary(GetAgentResponseSchema, messages[0]!).agent?.name).toBe("simulate");
  });

  it("a request in separately padded segments (frame header, then message) decodes", async () => {
    const message = toBinary(GetAgentRequestSchema, create(GetAgentRequestSchema, { name: "summarize" }));
    const whole = frame(0, message);
    const body = whole.subarray(0, 5).toString("base64") + whole.subarray(5).toString("base64");
    expect(body.slice(0, 8)).toMatch(/=$/);
    const { messages, trailer } = parseFrames(await (await call("GetAgent", body)).text());
    expect(trailer["grpc-status"]).toBe("0");
    expect(fromBinary(GetAgentResponseSchema, messages[0]!).agent?.name).toBe("summarize");
  });

  it("errors come back as a base64 trailer: unknown agent NOT_FOUND, bad base64 INVALID_ARGUMENT, no key UNAUTHENTICATED", async () => {
    const missing = frame(0, toBinary(GetAgentRequestSchema, create(GetAgentRequestSchema, { name: "nope" })));
    expect(parseFrames(await (await call("GetAgent", missing.toString("base64"))).text()).trailer["grpc-status"]).toBe(
      "5",
    );
    expect(parseFrames(await (await call("GetAgent", "!!!not base64!!")).text()).trailer["grpc-status"]).toBe("3");
    const noKey = await call("GetAgent", missing.toString("base64"), "agentd_wrong");
    const status = noKey.headers.get("grpc-status") ?? parseFrames(await noKey.text()).trailer["grpc-status"];
    expect(status).toBe("16");
  });

  it("server streaming: RunStream's events arrive as base64 frames, ending with the terminal state and OK", async () => {
    const request = frame(
      0,
      toBinary(
        RunStreamRequestSchema,
        create(RunStreamRequestSchema, { agent: "simulate", input: value({ steps: 3, step_delay_ms: 20 }) }),
      ),
    );
    const res = await call("RunStream", request.toString("base64"));
    expect(res.status).toBe(200);
    const { messages, trailer } = parseFrames(await res.text());
    expect(trailer["grpc-status"]).toBe("0");
    const events = messages.map((m) => fromBinary(RunStreamResponseSchema, m)).filter((r) => r.event);
    expect(events.length).toBeGreaterThan(2);
    const last = events.at(-1)!.event!;
    expect(last.event.case === "stateChange" && last.event.value.state).toBe(TaskState.SUCCEEDED);
  });
});

describe("base64 stream decoding", () => {
  it("decodes any chunking and padded segments; refuses bad or truncated text", async () => {
    const collect = async (parts: string[]) => {
      const out: Uint8Array[] = [];
      for await (const c of decodeBase64Stream(
        (async function* () {
          for (const p of parts) yield new TextEncoder().encode(p);
        })(),
      ))
        out.push(c);
      return Buffer.concat(out).toString();
    };
    expect(await collect(["aGVs", "bG8="])).toBe("hello");
    expect(await collect(["aG", "VsbG8", "="])).toBe("hello");
    expect(await collect(["aGk=", "aGk="])).toBe("hihi");
    await expect(collect(["aGk"])).rejects.toThrow(/truncated/);
    await expect(collect(["a*k="])).rejects.toThrow(/base64/);
  });
});

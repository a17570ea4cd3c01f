// Runs in the browser page of api.browser.test.ts (bundled there with esbuild): agentd's
// clients over connect-web transports, as a web app would use them. Each check returns
// plain data (or the error's code) for the test to assert.
import { create, fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  AgentService,
  ListAgentsRequestSchema,
  ListAgentsResponseSchema,
  RunStreamRequestSchema,
  RunStreamResponseSchema,
} from "../../gen/agentd/v1/agent_service_pb.js";
import { TaskService } from "../../gen/agentd/v1/task_service_pb.js";

export type Kind = "connect-json" | "connect-binary" | "grpc-web";

function transport(kind: Kind, baseUrl: string, credential: string): Transport {
  const interceptors: Interceptor[] = [
    (next) => (req) => {
      req.header.set("authorization", `Bearer ${credential}`);
      return next(req);
    },
  ];
  if (kind === "grpc-web") return createGrpcWebTransport({ baseUrl, interceptors });
  return createConnectTransport({ baseUrl, interceptors, useBinaryFormat: kind === "connect-binary" });
}

type Outcome<T> = { ok: true; value: T } | { ok: false; code: string; message: string };

async function outcome<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    const e = ConnectError.from(error);
    return { ok: false, code: Code[e.code], message: e.rawMessage };
  }
}

/** One gRPC-Web frame: flag byte, big-endian length, payload. */
function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** A gRPC-Web text body back to bytes: a concatenation of base64 chunks, each padded on its own. */
function fromBase64Chunks(text: string): Uint8Array {
  const bytes: number[] = [];
  for (const chunk of text.match(/[A-Za-z0-9+/]+={0,2}/g) ?? []) {
    for (const c of atob(chunk)) bytes.push(c.charCodeAt(0));
  }
  return new Uint8Array(bytes);
}

/** The frames of a gRPC-Web body: messages, and the trailers as text. */
function readFrames(bytes: Uint8Array): { messages: Uint8Array[]; trailers: string } {
  const messages: Uint8Array[] = [];
  let trailers = "";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + 5 <= bytes.length; ) {
    const length = view.getUint32(at + 1);
    const payload = bytes.subarray(at + 5, at + 5 + length);
    if (bytes[at]! & 0x80) trailers += new TextDecoder().decode(payload);
    else messages.push(payload);
    at += 5 + length;
  }
  return { messages, trailers };
}

const toBase64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

/**
 * gRPC-Web text (`application/grpc-web-text`, what Google's grpc-web client sends) with
 * hand-built frames: the request body is a base64 frame, the answer base64 frames with
 * the trailers in the last one. Streaming reads the body as it arrives and counts the
 * chunks that carried at least one message before the end.
 */
async function grpcWebText(
  baseUrl: string,
  credential: string,
  method: string,
  request: Uint8Array,
): Promise<{ status: number; contentType: string; messages: Uint8Array[]; grpcStatus: string; chunks: number }> {
  const res = await fetch(`${baseUrl}/agentd.v1.AgentService/${method}`, {
    method: "POST",
    headers: {
      "content-type": "application/grpc-web-text",
      accept: "application/grpc-web-text",
      "x-grpc-web": "1",
      "x-user-agent": "grpc-web-javascript/0.1",
      authorization: `Bearer ${credential}`,
    },
    body: toBase64(frame(request)),
  });
  let text = "";
  let chunks = 0;
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += value;
    chunks++;
  }
  const { messages, trailers } = readFrames(fromBase64Chunks(text));
  const grpcStatus = /grpc-status:\s*(\d+)/i.exec(trailers)?.[1] ?? res.headers.get("grpc-status") ?? "";
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", messages, grpcStatus, chunks };
}

const checks = {
  /** Unary: ListAgents, then a synchronous Run. */
  unary(kind: Kind, baseUrl: string, credential: string) {
    return outcome(async () => {
      const agents = createClient(AgentService, transport(kind, baseUrl, credential));
      let requestId: string | null = null;
      // Readable only when the server exposes it (Access-Control-Expose-Headers).
      const list = await agents.listAgents({}, { onHeader: (h) => (requestId = h.get("x-request-id")) });
      const run = await agents.run({
        agent: "summarize",
        input: fromJson(ValueSchema, { text: "Browsers are clients too. They call agentd." }),
      });
      return { agents: list.agents.map((a) => a.name), state: run.task?.state ?? 0, requestId };
    });
  },
  /** Server streaming: RunStream to the end; the states seen and how many events. */
  runStream(kind: Kind, baseUrl: string, credential: string) {
    return outcome(async () => {
      const agents = createClient(AgentService, transport(kind, baseUrl, credential));
      const states: number[] = [];
      let events = 0;
      for await (const res of agents.runStream({
        agent: "simulate",
        input: fromJson(ValueSchema, { steps: 3, step_delay_ms: 20 }),
      })) {
        if (!res.event) continue;
        events++;
        if (res.event.event.case === "stateChange") states.push(res.event.event.value.state);
      }
      return { events, states };
    });
  },
  /** WatchTask to the end (or its error). */
  watch(kind: Kind, baseUrl: string, credential: string, taskId: string) {
    return outcome(async () => {
      const tasks = createClient(TaskService, transport(kind, baseUrl, credential));
      const states: number[] = [];
      for await (const res of tasks.watchTask({ taskId })) {
        if (res.event?.event.case === "stateChange") states.push(res.event.event.value.state);
      }
      return { states };
    });
  },
  getTask(kind: Kind, baseUrl: string, credential: string, taskId: string) {
    return outcome(async () => {
      const tasks = createClient(TaskService, transport(kind, baseUrl, credential));
      return { id: (await tasks.getTask({ taskId })).task?.id ?? "" };
    });
  },
  /** SSE through fetch (EventSource cannot send authorization): the event names to the end. */
  async sse(baseUrl: string, credential: string, taskId: string) {
    try {
      const res = await fetch(`${baseUrl}/v1/tasks/${taskId}/events`, {
        headers: { authorization: `Bearer ${credential}`, accept: "text/event-stream" },
      });
      const text = await res.text();
      const names = [...text.matchAll(/^event: (.*)$/gm)].map((m) => m[1]);
      return { status: res.status, names };
    } catch (error) {
      return { status: 0, names: [], error: String(error) };
    }
  },
  /** gRPC-Web text, unary: ListAgents. */
  async grpcWebTextUnary(baseUrl: string, credential: string) {
    const out = await grpcWebText(
      baseUrl,
      credential,
      "ListAgents",
      toBinary(ListAgentsRequestSchema, create(ListAgentsRequestSchema)),
    );
    const agents = out.messages.flatMap((m) => fromBinary(ListAgentsResponseSchema, m).agents.map((a) => a.name));
    return { status: out.status, contentType: out.contentType, grpcStatus: out.grpcStatus, agents };
  },
  /** gRPC-Web text, server streaming: RunStream of simulate to its end. */
  async grpcWebTextStream(baseUrl: string, credential: string) {
    const request = create(RunStreamRequestSchema, {
      agent: "simulate",
      input: fromJson(ValueSchema, { steps: 3, step_delay_ms: 50 }),
    });
    const out = await grpcWebText(baseUrl, credential, "RunStream", toBinary(RunStreamRequestSchema, request));
    const states: number[] = [];
    for (const m of out.messages) {
      const event = fromBinary(RunStreamResponseSchema, m).event;
      if (event?.event.case === "stateChange") states.push(event.event.value.state);
    }
    return { status: out.status, grpcStatus: out.grpcStatus, events: out.messages.length, states, chunks: out.chunks };
  },
};

export type Checks = typeof checks;
(globalThis as unknown as { agentd: Checks }).agentd = checks;
// The test waits for this (the tests are type-checked without the DOM library).
(globalThis as unknown as { document: { title: string } }).document.title = "ready";

// Runs in the browser page of api.browser.test.ts (bundled there with esbuild): agentd's
// clients over connect-web transports, as a web app would use them. Each check returns
// plain data (or the error's code) for the test to assert.
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { AgentService } from "../../gen/agentd/v1/agent_service_pb.js";
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
};

export type Checks = typeof checks;
(globalThis as unknown as { agentd: Checks }).agentd = checks;
// The test waits for this (the tests are type-checked without the DOM library).
(globalThis as unknown as { document: { title: string } }).document.title = "ready";

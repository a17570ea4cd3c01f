// SSE for browsers and plain HTTP clients: GET /v1/tasks/{id}/events on the RPC port,
// read here with node:http as any HTTP client would.
import * as http from "node:http";
import * as http2 from "node:http2";
import { fromBinary, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskEventSchema, TaskState } from "../../gen/agentd/v1/task_pb.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { value } from "../support/json.js";
import { asJson, listAllEvents, waitForState } from "./support.js";

const PER_TENANT = 3;
let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd({ config: { streamKeepAliveMs: 150, maxStreamsPerTenant: PER_TENANT } });
});
afterAll(async () => {
  await agentd?.close();
});

interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  retry?: string;
  comment?: string;
}

interface SseResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The JSON body of a non-200 answer. */
  json?: { code: string; message: string; reason: string };
  /** Resolves with the next message; undefined when the response has ended. */
  next(): Promise<SseMessage | undefined>;
  /** Cuts the connection. */
  cut(): void;
}

/** A GET with an SSE reader: messages are split on blank lines, fields parsed per line. */
function get(
  path: string,
  headers: Record<string, string> = { authorization: `Bearer ${agentd.key}` },
  method = "GET",
): Promise<SseResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${agentd.url}${path}`, { method, headers, agent: false }, (res) => {
      res.setEncoding("utf8");
      if (res.statusCode !== 200) {
        let body = "";
        res.on("data", (c: string) => (body += c));
        res.on("end", () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            ...(body ? { json: JSON.parse(body) } : {}),
            next: async () => undefined,
            cut: () => req.destroy(),
          }),
        );
        return;
      }
      let buffer = "";
      const messages: SseMessage[] = [];
      let ended = false;
      let wake: (() => void) | undefined;
      res.on("data", (chunk: string) => {
        buffer += chunk;
        for (let at = buffer.indexOf("\n\n"); at >= 0; at = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const message: SseMessage = {};
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) message.comment = line.slice(1).trim();
            else {
              const colon = line.indexOf(":");
              const field = line.slice(0, colon) as keyof SseMessage;
              message[field] = line.slice(colon + 1).replace(/^ /, "");
            }
          }
          messages.push(message);
        }
        wake?.();
      });
      res.on("end", () => {
        ended = true;
        wake?.();
      });
      res.on("error", () => {
        ended = true;
        wake?.();
      });
      resolve({
        status: 200,
        headers: res.headers,
        async next() {
          while (messages.length === 0 && !ended) await new Promise<void>((r) => (wake = r));
          return messages.shift();
        },
        cut: () => req.destroy(),
      });
    });
    req.on("error", reject);
    req.end();
  });
}

/** Reads events (skipping comments and retry hints) until `count` or the end. */
async function readEvents(res: SseResponse, count = Number.POSITIVE_INFINITY): Promise<SseMessage[]> {
  const events: SseMessage[] = [];
  while (events.length < count) {
    const m = await res.next();
    if (!m) break;
    if (m.data !== undefined) events.push(m);
  }
  return events;
}

/** Parses a TaskEvent's JSON and sends it through binary, as ListTaskEvents' events were (floats become float32). */
function viaBinary(json: JsonValue): unknown {
  return toJson(
    TaskEventSchema,
    fromBinary(TaskEventSchema, toBinary(TaskEventSchema, fromJson(TaskEventSchema, json))),
  );
}

const eventsPath = (id: string, query = "") => `/v1/tasks/${id}/events${query}`;

async function pausedTask(key = agentd.key) {
  const client = agentd.clients(key);
  const { task } = await client.tasks.createTask({
    agent: "simulate",
    input: value({ ask: [{ prompt: "ok?", schema: { type: "boolean" } }] }),
  });
  return waitForState(client, task!.id, TaskState.INPUT_REQUIRED);
}

describe("GET /v1/tasks/{id}/events", () => {
  it("streams the task's events; a cut connection resumes with Last-Event-ID, every event exactly once; the end is final", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 6, step_delay_ms: 40, deltas: 6, delta_rate: 200 }),
    });
    const first = await get(eventsPath(task!.id));
    expect(first.status).toBe(200);
    expect(first.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(first.headers["cache-control"]).toMatch(/no-cache/);
    expect(await first.next()).toEqual({ retry: "1000" });
    const before = await readEvents(first, 3);
    first.cut();

    const second = await get(eventsPath(task!.id), {
      authorization: `Bearer ${agentd.key}`,
      "last-event-id": before.at(-1)!.id!,
    });
    const rest = await readEvents(second); // to the end: the server closes after the terminal event
    const all = [...before, ...rest];

    const log = await listAllEvents(agentd.client, task!.id);
    // data: is proto3 JSON of TaskEvent (fromJson accepts it); the same events as the log's.
    expect(all.map((m) => viaBinary(JSON.parse(m.data!)))).toEqual(asJson(log));
    expect(all.map((m) => Number(m.id))).toEqual(log.map((e) => Number(e.sequence)));
    const names: Record<string, string> = {
      stateChange: "state_change",
      progress: "progress",
      delta: "delta",
      log: "log",
    };
    expect(all.map((m) => m.event)).toEqual(log.map((e) => names[e.event.case!]));
    expect(JSON.parse(all.at(-1)!.data!).stateChange.state).toBe("TASK_STATE_SUCCEEDED");

    // EventSource reconnects after the end with the last id: 204 tells it to stop.
    const again = await get(eventsPath(task!.id), {
      authorization: `Bearer ${agentd.key}`,
      "last-event-id": all.at(-1)!.id!,
    });
    expect(again.status).toBe(204);
  });

  it("?after_sequence= resumes too; Last-Event-ID wins over it", async () => {
    const { task } = await agentd.client.agents.run({ agent: "simulate", input: value({ steps: 2 }) });
    const last = Number(task!.lastSequence);
    const byQuery = await readEvents(await get(eventsPath(task!.id, `?after_sequence=${last - 2}`)));
    expect(byQuery.map((m) => Number(m.id))).toEqual([last - 1, last]);
    const byHeader = await readEvents(
      await get(eventsPath(task!.id, "?after_sequence=0"), {
        authorization: `Bearer ${agentd.key}`,
        "last-event-id": String(last - 1),
      }),
    );
    expect(byHeader.map((m) => Number(m.id))).toEqual([last]);
  });

  it("sends keep-alive comments while nothing happens, and ends after the terminal event", async () => {
    const paused = await pausedTask();
    const res = await get(eventsPath(paused.id, `?after_sequence=${paused.lastSequence}`));
    const comments: string[] = [];
    while (comments.length < 2) {
      const m = await res.next();
      if (m?.comment) comments.push(m.comment);
    }
    expect(comments).toEqual(["keep-alive", "keep-alive"]);
    await agentd.client.tasks.cancelTask({ taskId: paused.id });
    const rest = await readEvents(res);
    expect(rest.map((m) => m.event)).toEqual(["state_change"]);
    expect(JSON.parse(rest[0]!.data!).stateChange.state).toBe("TASK_STATE_CANCELED");
  });

  it("works over HTTP/2 (h2c) on the same port", async () => {
    const { task } = await agentd.client.agents.run({ agent: "simulate", input: value({ steps: 1 }) });
    const session = http2.connect(agentd.url);
    try {
      const stream = session.request({ ":path": eventsPath(task!.id), authorization: `Bearer ${agentd.key}` });
      const headers = await new Promise<http2.IncomingHttpHeaders>((r) => stream.once("response", r));
      expect(headers[":status"]).toBe(200);
      let body = "";
      stream.setEncoding("utf8");
      for await (const chunk of stream) body += chunk;
      expect(body.match(/^id: /gm)).toHaveLength(Number(task!.lastSequence));
    } finally {
      session.close();
    }
  });
});

describe("errors are HTTP statuses with JSON bodies", () => {
  it("401 without a key or with a bad one, 403 without tasks:read", async () => {
    const { task } = await agentd.client.agents.run({ agent: "simulate", input: value({ steps: 0 }) });
    const none = await get(eventsPath(task!.id), {});
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toBe("Bearer");
    expect(none.json).toMatchObject({ code: "unauthenticated", reason: "MISSING_CREDENTIALS" });
    const bad = await get(eventsPath(task!.id), { authorization: "Bearer agentd_nope" });
    expect(bad.status).toBe(401);
    expect(bad.json?.reason).toBe("INVALID_API_KEY");
    const writer = await agentd.createKey("t1", ["tasks:write"]);
    const forbidden = await get(eventsPath(task!.id), { authorization: `Bearer ${writer}` });
    expect(forbidden.status).toBe(403);
    expect(forbidden.json).toMatchObject({ code: "permission_denied", reason: "MISSING_SCOPE" });
    expect(forbidden.json?.message).toMatch(/tasks:read/);
  });

  it("404 for an unknown task, a malformed id, another tenant's task; 400 for a bad cursor; 405 for POST", async () => {
    const { task } = await agentd.client.agents.run({ agent: "simulate", input: value({ steps: 0 }) });
    for (const id of ["0190a9f4-0000-7000-8000-000000000000", "nope"]) {
      const res = await get(eventsPath(id));
      expect(res.status).toBe(404);
      expect(res.json).toMatchObject({ code: "not_found", reason: "TASK_NOT_FOUND" });
    }
    const other = await agentd.createKey("t2");
    expect((await get(eventsPath(task!.id), { authorization: `Bearer ${other}` })).status).toBe(404);

    const negative = await get(eventsPath(task!.id, "?after_sequence=-1"));
    expect(negative.status).toBe(400);
    expect(negative.json).toMatchObject({ code: "invalid_argument" });
    expect(negative.json?.message).toMatch(/after_sequence must not be negative/);
    const garbage = await get(eventsPath(task!.id), { authorization: `Bearer ${agentd.key}`, "last-event-id": "abc" });
    expect(garbage.status).toBe(400);
    expect(garbage.json?.message).toMatch(/Last-Event-ID must be a whole number/);
    const post = await get(eventsPath(task!.id), { authorization: `Bearer ${agentd.key}` }, "POST");
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET");
  });

  it("429 with Retry-After past the tenant's stream cap; a closed stream frees its slot", async () => {
    const paused = await pausedTask();
    const open = await Promise.all(Array.from({ length: PER_TENANT }, () => get(eventsPath(paused.id))));
    expect(open.map((r) => r.status)).toEqual(Array(PER_TENANT).fill(200));
    const refused = await get(eventsPath(paused.id));
    expect(refused.status).toBe(429);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(refused.json).toMatchObject({ code: "resource_exhausted", reason: "TOO_MANY_STREAMS" });
    // Streams of every kind count: a WatchTask of this tenant is refused too.
    const it = agentd.client.tasks.watchTask({ taskId: paused.id })[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toThrow(/open streams/);

    open[0]!.cut();
    await new Promise((r) => setTimeout(r, 100));
    const reopened = await get(eventsPath(paused.id));
    expect(reopened.status).toBe(200);
    for (const r of [...open, reopened]) r.cut();
    await agentd.client.tasks.cancelTask({ taskId: paused.id });
  });

  it("GET /metrics is served beside the events; other paths are 404", async () => {
    const metrics = await fetch(`${agentd.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/agentd_stream_log_reads_total/);
    expect((await fetch(`${agentd.url}/v1/nothing`)).status).toBe(404);
  });
});

// Hostile input never reaches INTERNAL (issue 7, part 3) and every error is bounded
// (part 4), in every protocol: gRPC (grpc-js, raw bytes where a client would refuse to
// encode), Connect JSON and binary, unary and streaming, and gRPC-Web.
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { DurationSchema, type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ConverseRequest,
  ConverseRequestSchema,
  RunRequestSchema,
  RunStreamRequestSchema,
} from "../../gen/agentd/v1/agent_service_pb.js";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import {
  CreateTaskRequestSchema,
  ListTaskEventsRequestSchema,
  ProvideInputRequestSchema,
  WaitTaskRequestSchema,
  WatchTaskRequestSchema,
} from "../../gen/agentd/v1/task_service_pb.js";
import { RotateWebhookSecretRequestSchema } from "../../gen/agentd/v1/webhook_service_pb.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { badRequest, errorInfo, expectCode } from "../support/expect.js";
import { value } from "../support/json.js";

/** Every error must stay far below gRPC's header limits (8 KB default in many proxies, ~64 KB hard). */
const MAX_ERROR_BYTES = 16 * 1024;

let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd({ config: { maxRequestBytes: 4 * 1024 * 1024 } });
});
afterAll(async () => {
  await agentd?.close();
});

type Wire = "grpc" | "connect-proto" | "connect-json" | "grpc-web";
interface Outcome {
  /** Lower-case code name ("invalid_argument"), "ok" when the call succeeded. */
  code: string;
  message: string;
  /** Bytes of the error as sent: message and details (headers or body). */
  errorBytes: number;
}

const GRPC_CODES = Object.fromEntries(Object.entries(grpc.status).map(([name, n]) => [String(n), name.toLowerCase()]));

function envelope(bytes: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + bytes.byteLength);
  out[0] = flags;
  out.writeUInt32BE(bytes.byteLength, 1);
  Buffer.from(bytes).copy(out, 5);
  return out;
}

function* envelopes(body: Buffer): Generator<{ flags: number; data: Buffer }> {
  for (let at = 0; at + 5 <= body.byteLength; ) {
    const length = body.readUInt32BE(at + 1);
    yield { flags: body[at]!, data: body.subarray(at + 5, at + 5 + length) };
    at += 5 + length;
  }
}

/** One call with a raw request body, in one of the protocols; `stream` for server-streaming RPCs. */
async function rawCall(
  wire: Wire,
  path: string,
  body: Uint8Array | string,
  opts: { stream?: boolean; key?: string | null } = {},
): Promise<Outcome> {
  const key = opts.key === undefined ? agentd.key : opts.key;
  const auth: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const bytes = typeof body === "string" ? Buffer.from(body) : Buffer.from(body);
  if (wire === "grpc") return grpcCall(path, bytes, opts.stream ?? false, key);
  if (wire === "grpc-web") {
    const res = await fetch(`${agentd.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", ...auth },
      body: envelope(bytes),
    });
    const out = Buffer.from(await res.arrayBuffer());
    let trailer = "";
    for (const e of envelopes(out)) if (e.flags & 0x80) trailer = e.data.toString("latin1");
    const status = res.headers.get("grpc-status") ?? /grpc-status: ?(\d+)/i.exec(trailer)?.[1] ?? "";
    const message = decodeURIComponent(
      res.headers.get("grpc-message") ?? /grpc-message: ?([^\r\n]*)/i.exec(trailer)?.[1] ?? "",
    );
    const details =
      res.headers.get("grpc-status-details-bin") ?? /grpc-status-details-bin: ?([^\r\n]*)/i.exec(trailer)?.[1] ?? "";
    return { code: GRPC_CODES[status] ?? `status ${status}`, message, errorBytes: message.length + details.length };
  }
  const json = wire === "connect-json";
  if (opts.stream) {
    const res = await fetch(`${agentd.url}${path}`, {
      method: "POST",
      headers: { "content-type": json ? "application/connect+json" : "application/connect+proto", ...auth },
      body: envelope(bytes),
    });
    const out = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) {
      const err = JSON.parse(out.toString()) as { code: string; message: string };
      return { code: err.code, message: err.message, errorBytes: out.byteLength };
    }
    for (const e of envelopes(out)) {
      if (!(e.flags & 0x02)) continue;
      const end = JSON.parse(e.data.toString()) as { error?: { code: string; message: string } };
      return end.error
        ? { code: end.error.code, message: end.error.message, errorBytes: e.data.byteLength }
        : { code: "ok", message: "", errorBytes: 0 };
    }
    return { code: "no end-stream", message: "", errorBytes: 0 };
  }
  const res = await fetch(`${agentd.url}${path}`, {
    method: "POST",
    headers: { "content-type": json ? "application/json" : "application/proto", ...auth },
    body: bytes,
  });
  const out = Buffer.from(await res.arrayBuffer());
  if (res.status === 200) return { code: "ok", message: "", errorBytes: 0 };
  expect(res.status, "an error is never told to retry by HTTP status").not.toBe(429);
  const err = JSON.parse(out.toString()) as { code: string; message: string };
  return { code: err.code, message: err.message, errorBytes: out.byteLength };
}

function grpcCall(path: string, body: Buffer, stream: boolean, key: string | null): Promise<Outcome> {
  const client = new grpc.Client(`127.0.0.1:${agentd.port}`, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (key) metadata.set("authorization", `Bearer ${key}`);
  const outcome = (err: grpc.ServiceError | null): Outcome => {
    client.close();
    if (!err) return { code: "ok", message: "", errorBytes: 0 };
    const details = err.metadata?.get("grpc-status-details-bin")[0];
    return {
      code: GRPC_CODES[String(err.code)] ?? String(err.code),
      message: err.details,
      errorBytes: err.details.length + (details ? Buffer.byteLength(details as Buffer) : 0),
    };
  };
  return new Promise((resolve) => {
    if (!stream) {
      client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        metadata,
        (err) => resolve(outcome(err)),
      );
      return;
    }
    const call = client.makeServerStreamRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      metadata,
    );
    call.on("data", () => {});
    call.on("error", (err: grpc.ServiceError) => resolve(outcome(err)));
    call.on("end", () => resolve(outcome(null)));
  });
}

const WIRES: Wire[] = ["grpc", "connect-proto", "grpc-web"];
const ALL_WIRES: Wire[] = [...WIRES, "connect-json"];

/** A Value tree: { a: { b: [1, <leaf>] } }. */
function nested(leaf: Value): Value {
  const list = create(ValueSchema, {
    kind: {
      case: "listValue",
      value: { values: [create(ValueSchema, { kind: { case: "numberValue", value: 1 } }), leaf] },
    },
  });
  const inner = create(ValueSchema, { kind: { case: "structValue", value: { fields: { b: list } } } });
  return create(ValueSchema, { kind: { case: "structValue", value: { fields: { a: inner } } } });
}

const BAD_VALUES: [string, Value][] = [
  ["a Value with no kind", create(ValueSchema)],
  ["NaN", create(ValueSchema, { kind: { case: "numberValue", value: Number.NaN } })],
  ["Infinity", create(ValueSchema, { kind: { case: "numberValue", value: Number.POSITIVE_INFINITY } })],
  ["-Infinity", create(ValueSchema, { kind: { case: "numberValue", value: Number.NEGATIVE_INFINITY } })],
];

const TASK_ID = "0190f9a5-0000-7000-8000-000000000000";

/** The RPCs that take a Value, and where it goes; each returns [path, stream, bytes, field path]. */
function valueCarriers(v: Value): [string, boolean, Uint8Array, string][] {
  const bin = <D extends DescMessage>(schema: D, init: Partial<MessageShape<D>>) =>
    toBinary(schema, create(schema, init as never));
  return [
    [
      "/agentd.v1.TaskService/CreateTask",
      false,
      bin(CreateTaskRequestSchema, { agent: "simulate", input: v }),
      "input",
    ],
    ["/agentd.v1.AgentService/Run", false, bin(RunRequestSchema, { agent: "simulate", input: v }), "input"],
    ["/agentd.v1.AgentService/RunStream", true, bin(RunStreamRequestSchema, { agent: "simulate", input: v }), "input"],
    [
      "/agentd.v1.TaskService/ProvideInput",
      false,
      bin(ProvideInputRequestSchema, { taskId: TASK_ID, value: v }),
      "value",
    ],
  ];
}

function expectInvalid(out: Outcome, mentions?: string): void {
  expect(out.code, out.message).toBe("invalid_argument");
  if (mentions !== undefined) expect(out.message).toContain(mentions);
  expect(out.errorBytes).toBeLessThan(MAX_ERROR_BYTES);
}

describe("google.protobuf.Value that has no JSON form", () => {
  it("the issue's example: CreateTask with input = Value{} (binary) is INVALID_ARGUMENT", async () => {
    const out = await rawCall(
      "connect-proto",
      "/agentd.v1.TaskService/CreateTask",
      Buffer.from("\x0a\x08simulate\x12\x00", "latin1"),
    );
    expectInvalid(out, "input");
  });

  for (const [what, leaf] of BAD_VALUES) {
    it(`${what}, at the top and nested, in every RPC that takes a Value, in every binary protocol`, async () => {
      for (const wire of WIRES) {
        for (const v of [leaf, nested(leaf)]) {
          for (const [path, stream, body, field] of valueCarriers(v)) {
            const out = await rawCall(wire, path, body, { stream });
            expectInvalid(out, v === leaf ? field : `${field}.a.b[1]`);
          }
        }
      }
    });
  }

  it("JSON 1e400 (Infinity once parsed), nested, is INVALID_ARGUMENT in Connect JSON unary and streaming", async () => {
    const input = '{"a":{"b":[1,1e400]}}';
    for (const [path, stream] of [
      ["/agentd.v1.TaskService/CreateTask", false],
      ["/agentd.v1.AgentService/Run", false],
      ["/agentd.v1.AgentService/RunStream", true],
    ] as const) {
      expectInvalid(
        await rawCall("connect-json", path, `{"agent":"simulate","input":${input}}`, { stream }),
        "input.a.b[1]",
      );
    }
    expectInvalid(
      await rawCall("connect-json", "/agentd.v1.TaskService/ProvideInput", `{"taskId":"${TASK_ID}","value":${input}}`),
      "value.a.b[1]",
    );
  });

  it("Converse: a bad answer is a rejection naming the path, and the conversation goes on", async () => {
    const queue: ConverseRequest[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    const send = (m: ConverseRequest) => {
      queue.push(m);
      wake?.();
    };
    async function* requests() {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (closed) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    }
    const client = agentd.clients(agentd.key, "grpc").agents;
    send(
      create(ConverseRequestSchema, {
        msg: { case: "start", value: { agent: "simulate", input: value({ steps: 1, step_delay_ms: 60_000 }) } },
      }),
    );
    const it = client.converse(requests())[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value?.event?.sequence).toBe(1n);
    for (const [, leaf] of BAD_VALUES) {
      send(create(ConverseRequestSchema, { msg: { case: "input", value: { value: nested(leaf) } } }));
      let r = await it.next();
      while (!r.done && !r.value.rejection) r = await it.next();
      expect(r.value?.rejection).toMatchObject({ code: "INVALID_ARGUMENT" });
      expect(r.value!.rejection!.fieldViolations.map((v: { field: string }) => v.field)).toEqual([
        "input.value.a.b[1]",
      ]);
    }
    // Still alive: a cancel ends the task, and with it the conversation.
    send(create(ConverseRequestSchema, { msg: { case: "cancel", value: {} } }));
    let last: string | undefined;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      if (r.value.event?.event.case === "stateChange") last = String(r.value.event.event.value.task?.state);
    }
    closed = true;
    wake?.();
    expect(last).toBe(String(TaskState.CANCELED));
  });

  it("Converse: a bad Value in the opening start message ends the call with INVALID_ARGUMENT", async () => {
    const client = agentd.clients(agentd.key, "grpc").agents;
    async function* one() {
      yield create(ConverseRequestSchema, {
        msg: { case: "start", value: { agent: "simulate", input: nested(BAD_VALUES[1]![1]) } },
      });
    }
    const err = await expectCode(
      (async () => {
        for await (const _ of client.converse(one()));
      })(),
      Code.InvalidArgument,
    );
    expect(err.message).toContain("start.input.a.b[1]");
  });
});

describe("strings Postgres cannot store", () => {
  const NUL_CASES: [string, string, string][] = [
    ["/agentd.v1.TaskService/CreateTask", '{"agent":"simulate","labels":{"team":"a\\u0000b"}}', "labels[team]"],
    ["/agentd.v1.TaskService/CreateTask", '{"agent":"simulate","labels":{"te\\u0000am":"x"}}', "labels[te\\u0000am]"],
    ["/agentd.v1.TaskService/CreateTask", '{"agent":"simulate","input":{"k\\u0000":1}}', "input.k\\u0000"],
    ["/agentd.v1.TaskService/CreateTask", '{"agent":"simulate","input":{"k":["\\u0000"]}}', "input.k[0]"],
    ["/agentd.v1.TaskService/CreateTask", '{"agent":"simulate","requestId":"r\\u0000"}', "request_id"],
    ["/agentd.v1.AgentService/Run", '{"agent":"simulate","input":{"text":"\\u0000"}}', "input.text"],
    [
      "/agentd.v1.TaskService/CreateTask",
      '{"agent":"simulate","webhook":{"url":"https://example.com/\\u0000"}}',
      "webhook.url",
    ],
    ["/agentd.v1.TaskService/ProvideInput", `{"taskId":"${TASK_ID}","value":"\\u0000"}`, "value"],
    ["/agentd.v1.TaskService/ListTasks", '{"agent":"a\\u0000"}', "agent"],
    ["/agentd.v1.TaskService/ListTasks", '{"labels":{"k":"\\u0000"}}', "labels[k]"],
    [
      "/agentd.v1.WebhookService/CreateWebhookEndpoint",
      '{"url":"https://example.com/\\u0000","eventTypes":["task.succeeded"]}',
      "url",
    ],
    [
      "/agentd.v1.WebhookService/CreateWebhookEndpoint",
      '{"url":"https://example.com/","eventTypes":["task.succeeded"],"description":"\\u0000"}',
      "description",
    ],
    [
      "/agentd.v1.WebhookService/UpdateWebhookEndpoint",
      `{"endpoint":{"id":"${TASK_ID}","description":"x\\u0000"},"updateMask":"description"}`,
      "endpoint.description",
    ],
  ];

  it.each(NUL_CASES)("U+0000 in %s %s is INVALID_ARGUMENT naming %s", async (path, body, field) => {
    expectInvalid(await rawCall("connect-json", path, body), `${field}: `);
  });

  it("U+0000 sent as binary (gRPC, Connect, gRPC-Web) is INVALID_ARGUMENT", async () => {
    const body = toBinary(
      CreateTaskRequestSchema,
      create(CreateTaskRequestSchema, { agent: "simulate", labels: { team: "a\u0000" } }),
    );
    for (const wire of WIRES)
      expectInvalid(await rawCall(wire, "/agentd.v1.TaskService/CreateTask", body), "labels[team]");
  });

  it.each([
    ['{"agent":"simulate","input":{"text":"\\ud800"}}', "input.text"],
    ['{"agent":"simulate","input":{"\\udc00":1}}', "input.\\udc00"],
    ['{"agent":"simulate","input":{"ok":"\\ud83d\\ude00 is fine","bad":"\\ude00"}}', "input.bad"],
  ])("a lone surrogate in JSON %s is INVALID_ARGUMENT naming %s", async (body, field) => {
    const out = await rawCall("connect-json", "/agentd.v1.TaskService/CreateTask", body);
    expectInvalid(out, field);
    expect(out.message).toContain("surrogate");
  });

  it("a lone surrogate in a JSON map or string field is refused by the decoder: INVALID_ARGUMENT", async () => {
    expectInvalid(
      await rawCall(
        "connect-json",
        "/agentd.v1.TaskService/CreateTask",
        '{"agent":"simulate","labels":{"k":"x\\ud83d"}}',
      ),
      "labels",
    );
    expectInvalid(
      await rawCall("connect-json", "/agentd.v1.TaskService/CreateTask", '{"agent":"simulate","requestId":"\\udc00"}'),
    );
  });

  it("a well-formed emoji is stored and comes back unchanged", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "simulate",
      input: value({ steps: 0, output: "😀" }),
      labels: { k: "😀" },
    });
    expect(task?.labels.k).toBe("😀");
    expect(task?.input?.kind.value).toBeDefined();
  });
});

describe("page tokens", () => {
  it("valid tokens page through every list; forged, tampered and foreign ones are INVALID_ARGUMENT", async () => {
    const key = await agentd.createKey("pages");
    const c = agentd.clients(key);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await c.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) })).task!.id);
    const p1 = await c.tasks.listTasks({ pageSize: 2 });
    expect(p1.tasks).toHaveLength(2);
    const p2 = await c.tasks.listTasks({ pageSize: 2, pageToken: p1.nextPageToken });
    expect([...p1.tasks, ...p2.tasks].map((t) => t.id).sort()).toEqual(ids.sort());

    const token = p1.nextPageToken;
    const [body, mac] = token.split(".");
    const payload = JSON.parse(Buffer.from(body!, "base64url").toString()) as { c: string };
    const forgedBody = Buffer.from(JSON.stringify({ ...payload, c: "x' OR 1=1 --" })).toString("base64url");
    const oldStyle = Buffer.from(JSON.stringify({ v: 1, c: "zzz", q: "x" })).toString("base64url");
    for (const bad of [
      `${forgedBody}.${mac}`,
      `${body}.${mac!.slice(0, -2)}AA`,
      oldStyle,
      `${body}.`,
      "%%%",
      "a.b.c",
      "x".repeat(100_000),
    ]) {
      const err = await expectCode(c.tasks.listTasks({ pageSize: 2, pageToken: bad }), Code.InvalidArgument);
      expect(errorInfo(err)?.reason).toBe("INVALID_PAGE_TOKEN");
      expect(err.message.length).toBeLessThan(500);
    }
    // Another query, and another tenant, cannot use it.
    await expectCode(c.tasks.listTasks({ pageSize: 2, pageToken: token, agent: "summarize" }), Code.InvalidArgument);
    await expectCode(agentd.client.tasks.listTasks({ pageSize: 2, pageToken: token }), Code.InvalidArgument);
    // Other lists: not interchangeable.
    await expectCode(c.webhooks.listWebhookEndpoints({ pageToken: token }), Code.InvalidArgument);
    await expectCode(c.webhooks.listWebhookDeliveries({ pageToken: token }), Code.InvalidArgument);
    await expectCode(c.agents.listAgents({ pageToken: token }), Code.InvalidArgument);
    await expectCode(c.tasks.listTaskEvents({ taskId: ids[0]!, pageToken: token }), Code.InvalidArgument);
  });

  it("ListTaskEvents and ListAgents page with their tokens", async () => {
    const { task } = await agentd.client.agents.run({ agent: "simulate", input: value({ steps: 2 }) });
    const e1 = await agentd.client.tasks.listTaskEvents({ taskId: task!.id, pageSize: 1 });
    const e2 = await agentd.client.tasks.listTaskEvents({ taskId: task!.id, pageSize: 1, pageToken: e1.nextPageToken });
    expect(e2.events[0]?.sequence).toBe(2n);
    const a1 = await agentd.client.agents.listAgents({ pageSize: 1 });
    const a2 = await agentd.client.agents.listAgents({ pageSize: 1, pageToken: a1.nextPageToken });
    expect(a2.agents[0]?.name).not.toBe(a1.agents[0]?.name);
    await expectCode(agentd.client.agents.listAgents({ pageToken: `${e1.nextPageToken}` }), Code.InvalidArgument);
  });
});

describe("int64 cursors out of the database's range", () => {
  const MAX = (1n << 63n) - 1n;
  it.each([MAX, 1n << 53n, -1n, -(1n << 63n)])(
    "after_sequence %s is INVALID_ARGUMENT in ListTaskEvents, WatchTask and Converse attach",
    async (after) => {
      const { task } = await agentd.client.tasks.createTask({ agent: "simulate", input: value({ steps: 0 }) });
      for (const wire of WIRES) {
        const list = toBinary(
          ListTaskEventsRequestSchema,
          create(ListTaskEventsRequestSchema, { taskId: task!.id, afterSequence: after }),
        );
        expectInvalid(await rawCall(wire, "/agentd.v1.TaskService/ListTaskEvents", list), "after_sequence");
        const watch = toBinary(
          WatchTaskRequestSchema,
          create(WatchTaskRequestSchema, { taskId: task!.id, afterSequence: after }),
        );
        expectInvalid(
          await rawCall(wire, "/agentd.v1.TaskService/WatchTask", watch, { stream: true }),
          "after_sequence",
        );
      }
      expectInvalid(
        await rawCall(
          "connect-json",
          "/agentd.v1.TaskService/ListTaskEvents",
          `{"taskId":"${task!.id}","afterSequence":"${after}"}`,
        ),
        "after_sequence",
      );
      async function* attach() {
        yield create(ConverseRequestSchema, {
          msg: { case: "attach", value: { taskId: task!.id, afterSequence: after } },
        });
      }
      const err = await expectCode(
        (async () => {
          for await (const _ of agentd.clients(agentd.key, "grpc").agents.converse(attach()));
        })(),
        Code.InvalidArgument,
      );
      expect(err.message).toContain("attach.after_sequence");
    },
  );
});

describe("Duration out of its range", () => {
  const bad = [
    { seconds: 1n, nanos: 2_000_000_000 },
    { seconds: 315_576_000_001n, nanos: 0 },
    { seconds: -(1n << 62n), nanos: 0 },
    { seconds: 1n, nanos: -5 },
  ];
  it.each(bad)("%o is INVALID_ARGUMENT in CreateTask, Run, WaitTask and RotateWebhookSecret", async (d) => {
    const timeout = create(DurationSchema, d);
    const calls: [string, Uint8Array, string][] = [
      [
        "/agentd.v1.TaskService/CreateTask",
        toBinary(CreateTaskRequestSchema, create(CreateTaskRequestSchema, { agent: "simulate", timeout })),
        "timeout",
      ],
      [
        "/agentd.v1.AgentService/Run",
        toBinary(RunRequestSchema, create(RunRequestSchema, { agent: "simulate", timeout })),
        "timeout",
      ],
      [
        "/agentd.v1.TaskService/WaitTask",
        toBinary(WaitTaskRequestSchema, create(WaitTaskRequestSchema, { taskId: TASK_ID, timeout })),
        "timeout",
      ],
      [
        "/agentd.v1.WebhookService/RotateWebhookSecret",
        toBinary(RotateWebhookSecretRequestSchema, create(RotateWebhookSecretRequestSchema, { gracePeriod: timeout })),
        "grace_period",
      ],
    ];
    for (const wire of WIRES)
      for (const [path, body, field] of calls) expectInvalid(await rawCall(wire, path, body), field);
  });

  it("JSON durations beyond the range are INVALID_ARGUMENT too", async () => {
    expectInvalid(
      await rawCall(
        "connect-json",
        "/agentd.v1.TaskService/CreateTask",
        '{"agent":"simulate","timeout":"315576000001s"}',
      ),
    );
    expectInvalid(
      await rawCall(
        "connect-json",
        "/agentd.v1.TaskService/WaitTask",
        `{"taskId":"${TASK_ID}","timeout":"99999999999999s"}`,
      ),
    );
  });
});

describe("undecodable binary and deep nesting", () => {
  const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]);
  const streams = [
    "/agentd.v1.TaskService/WatchTask",
    "/agentd.v1.AgentService/RunStream",
    "/grpc.health.v1.Health/Watch",
  ];

  it("garbage on every server-streaming RPC is INVALID_ARGUMENT in every protocol", async () => {
    for (const wire of ALL_WIRES) {
      for (const path of streams)
        expectInvalid(await rawCall(wire, path, wire === "connect-json" ? "{nope" : garbage, { stream: true }));
    }
  });

  /** Simulate input nested `depth` levels deep: {"steps":0,"output":{"d":{"d":…"leaf"}}}. */
  function deep(depth: number): Value {
    let v = create(ValueSchema, { kind: { case: "stringValue", value: "leaf" } });
    for (let i = 1; i < depth; i++)
      v = create(ValueSchema, { kind: { case: "structValue", value: { fields: { d: v } } } });
    const steps = create(ValueSchema, { kind: { case: "numberValue", value: 0 } });
    return create(ValueSchema, { kind: { case: "structValue", value: { fields: { steps, output: v } } } });
  }

  function varint(n: number): Buffer {
    const out: number[] = [];
    for (; n > 0x7f; n >>>= 7) out.push((n & 0x7f) | 0x80);
    out.push(n);
    return Buffer.from(out);
  }
  /** A length-delimited field. */
  function field(no: number, data: Buffer): Buffer {
    return Buffer.concat([varint((no << 3) | 2), varint(data.byteLength), data]);
  }
  /** A Value {"d":{"d":…"x"}} `depth` levels deep, as protobuf binary, built without recursion. */
  function deepBytes(depth: number): Buffer {
    let v = field(3, Buffer.from("x")); // Value.string_value
    for (let i = 0; i < depth; i++) {
      const entry = Buffer.concat([field(1, Buffer.from("d")), field(2, v)]); // map entry: key, value
      v = field(5, field(1, entry)); // Value.struct_value → Struct.fields
    }
    return v;
  }

  it("binary input just past the depth limit (64) gets the depth message; far past it INVALID_ARGUMENT", async () => {
    for (const wire of WIRES) {
      for (const [path, stream, body] of valueCarriers(deep(64))) {
        const out = await rawCall(wire, path, body, { stream });
        // ProvideInput names a task that does not exist: NOT_FOUND once the input passed.
        expect(out.code, `${wire} ${path}: ${out.message}`).toBe(path.endsWith("ProvideInput") ? "not_found" : "ok");
      }
      for (const [path, stream, body] of valueCarriers(deep(65))) {
        expectInvalid(await rawCall(wire, path, body, { stream }), "nested deeper than 64");
      }
      // Far too deep for any encoder's recursion: written by hand.
      const tooDeep = Buffer.concat([Buffer.from("\x0a\x08simulate", "latin1"), field(2, deepBytes(5000))]);
      expectInvalid(await rawCall(wire, "/agentd.v1.TaskService/CreateTask", tooDeep));
      expectInvalid(await rawCall(wire, "/agentd.v1.AgentService/RunStream", tooDeep, { stream: true }));
    }
  });
});

describe("bounded errors", () => {
  it("10,000 bad label keys: at most 20 violations plus a count, in every protocol", async () => {
    const labels = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`bad key ${i}!`, "x"]));
    const body = toBinary(CreateTaskRequestSchema, create(CreateTaskRequestSchema, { agent: "simulate", labels }));
    for (const wire of WIRES) {
      const out = await rawCall(wire, "/agentd.v1.TaskService/CreateTask", body);
      expectInvalid(out, "more");
    }
    const err = await expectCode(agentd.client.tasks.createTask({ agent: "simulate", labels }), Code.InvalidArgument);
    expect(badRequest(err)?.fieldViolations.length).toBeLessThanOrEqual(20);
    expect(Number(errorInfo(err)?.metadata.more_violations)).toBeGreaterThan(9_900);
  });

  it("a 1 MB id is a short NOT_FOUND, also over grpc-js", async () => {
    const id = "x".repeat(1024 * 1024);
    for (const wire of ALL_WIRES) {
      const out = await rawCall(
        wire,
        "/agentd.v1.TaskService/GetTask",
        wire === "connect-json"
          ? JSON.stringify({ taskId: id })
          : Buffer.concat([Buffer.from([0x0a, 0x80, 0x80, 0x40]), Buffer.from(id)]),
      );
      expect(out.code).toBe("not_found");
      expect(out.errorBytes).toBeLessThan(2048);
    }
    const health = await rawCall(
      "grpc",
      "/grpc.health.v1.Health/Check",
      Buffer.concat([Buffer.from([0x0a, 0x80, 0x80, 0x40]), Buffer.from(id)]),
      { key: null },
    );
    expect(health.code).toBe("not_found");
    expect(health.errorBytes).toBeLessThan(2048);
  });

  it("a huge agent name in the request is echoed clipped", async () => {
    const out = await rawCall(
      "grpc",
      "/agentd.v1.AgentService/GetAgent",
      Buffer.concat([Buffer.from([0x0a, 0x80, 0x80, 0x40]), Buffer.alloc(1024 * 1024, 0x61)]),
    );
    expect(out.code).toBe("not_found");
    expect(out.errorBytes).toBeLessThan(2048);
  });

  it("a client x-request-id is kept when short and plain, replaced otherwise", async () => {
    const ask = async (id: string) =>
      (
        await fetch(`${agentd.url}/agentd.v1.AgentService/ListAgents`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${agentd.key}`, "x-request-id": id },
          body: "{}",
        })
      ).headers.get("x-request-id");
    expect(await ask("req-42")).toBe("req-42");
    for (const bad of ["x".repeat(10_000), "a b", "<script>", "ümlaut"]) {
      const got = await ask(encodeURI(bad) === bad ? bad : encodeURI(bad));
      expect(got).not.toBe(bad);
      expect(got!.length).toBeLessThanOrEqual(128);
    }
  });
});

describe("oversized requests and authentication before the body", () => {
  let small: TestAgentd;
  beforeAll(async () => {
    small = await startAgentd({ config: { maxRequestBytes: 64 * 1024 } });
  });
  afterAll(async () => {
    await small?.close();
  });

  it("too big is RESOURCE_EXHAUSTED with no retry advice: no 429, no RetryInfo", async () => {
    const big = { agent: "summarize", input: value({ text: "word ".repeat(40_000) }) };
    for (const protocol of ["grpc", "connect", "grpc-web"] as const) {
      const err = await expectCode(small.clients(small.key, protocol).tasks.createTask(big), Code.ResourceExhausted);
      expect(err.details.some((d) => "type" in d && d.type === "google.rpc.RetryInfo")).toBe(false);
    }
    // Connect over HTTP/1.1 with a streamed body (no Content-Length): not 429.
    const body = Buffer.from(JSON.stringify({ agent: "summarize", input: { text: "word ".repeat(40_000) } }));
    const res = await fetch(`${small.url}/agentd.v1.TaskService/CreateTask`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${small.key}` },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(body);
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(res.status).not.toBe(429);
    expect(res.headers.get("retry-after")).toBeNull();
    expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
  });

  it("a large body without a valid key is UNAUTHENTICATED, not read", async () => {
    const big = { agent: "summarize", input: value({ text: "word ".repeat(40_000) }) };
    for (const protocol of ["grpc", "connect", "grpc-web", "connect-http1"] as const) {
      for (const key of ["", "agentd_nokey"]) {
        await expectCode(
          small.clients(key, protocol).tasks.createTask(big, { timeoutMs: 10_000 }),
          Code.Unauthenticated,
        );
      }
    }
    const garbage = Buffer.alloc(256 * 1024, 0xff);
    for (const path of ["/agentd.v1.TaskService/CreateTask", "/agentd.v1.AgentService/RunStream"]) {
      const res = await fetch(`${small.url}${path}`, {
        method: "POST",
        headers: { "content-type": path.endsWith("Stream") ? "application/connect+proto" : "application/proto" },
        body: new ReadableStream({
          start(controller) {
            controller.enqueue(garbage);
            controller.close();
          },
        }),
        duplex: "half",
      } as RequestInit);
      const text = Buffer.from(await res.arrayBuffer()).toString("latin1");
      expect(text).toContain("unauthenticated");
    }
    // The server is still fine.
    expect((await small.client.agents.listAgents({})).agents.length).toBeGreaterThan(0);
  });
});

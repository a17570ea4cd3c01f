// A reference gRPC client for the streaming tests: @grpc/grpc-js with the .proto files
// loaded at run time (proto-loader), as grpc-js users do — a real HTTP/2 bidi stream,
// independent of the server's own library.
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { repoRoot } from "../support/agentd.js";

/** google.protobuf.Value as proto-loader represents it. */
export type GrpcValue =
  | { nullValue: "NULL_VALUE" }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { structValue: { fields: Record<string, GrpcValue> } }
  | { listValue: { values: GrpcValue[] } };

export function toValue(json: unknown): GrpcValue {
  if (json === null) return { nullValue: "NULL_VALUE" };
  if (typeof json === "number") return { numberValue: json };
  if (typeof json === "string") return { stringValue: json };
  if (typeof json === "boolean") return { boolValue: json };
  if (Array.isArray(json)) return { listValue: { values: json.map(toValue) } };
  return {
    structValue: { fields: Object.fromEntries(Object.entries(json as object).map(([k, v]) => [k, toValue(v)])) },
  };
}

/** A TaskEvent as proto-loader decodes it (longs and enums as strings, oneof name in `event`). */
export interface GrpcTaskEvent {
  taskId: string;
  sequence: string;
  event: string;
  stateChange?: { state: string; task: { id: string; state: string } };
  inputRequest?: { prompt: string };
  [k: string]: unknown;
}

export interface GrpcConverseResponse {
  event?: GrpcTaskEvent;
  keepAlive?: object;
  rejection?: {
    code: string;
    message: string;
    reason: string;
    fieldViolations?: { field: string; description: string }[];
  };
}

export interface GrpcConversation {
  write(message: object): void;
  /** Half-closes. */
  end(): void;
  /** Resolves with the first response after those already taken that matches; fails after `ms`. */
  waitFor(match: (res: GrpcConverseResponse) => boolean, ms?: number): Promise<GrpcConverseResponse>;
  /** Every response received so far. */
  readonly all: GrpcConverseResponse[];
  /** The call's final status. */
  readonly status: Promise<grpc.StatusObject>;
  cancel(): void;
}

type DuplexCtor = grpc.Client & { Converse(md: grpc.Metadata): grpc.ClientDuplexStream<object, GrpcConverseResponse> };

export function grpcAgentClient(url: string): DuplexCtor {
  const definition = protoLoader.loadSync("agentd/v1/agent_service.proto", {
    includeDirs: [path.join(repoRoot, "proto")],
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    agentd: { v1: { AgentService: grpc.ServiceClientConstructor } };
  };
  return new loaded.agentd.v1.AgentService(
    new URL(url).host,
    grpc.credentials.createInsecure(),
  ) as unknown as DuplexCtor;
}

type WatchCtor = grpc.Client & {
  WatchTask(
    req: { taskId: string; afterSequence?: string },
    md: grpc.Metadata,
  ): grpc.ClientReadableStream<{ event?: GrpcTaskEvent }>;
};

/** A TaskService client on a connection of its own (a local subchannel pool). */
export function grpcTaskClient(url: string): WatchCtor {
  const definition = protoLoader.loadSync("agentd/v1/task_service.proto", {
    includeDirs: [path.join(repoRoot, "proto")],
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    agentd: { v1: { TaskService: grpc.ServiceClientConstructor } };
  };
  return new loaded.agentd.v1.TaskService(new URL(url).host, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  }) as unknown as WatchCtor;
}

/** Reads a WatchTask stream to its end: the events' sequences. */
export function grpcWatch(client: WatchCtor, key: string, taskId: string): Promise<string[]> {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${key}`);
  return new Promise((resolve, reject) => {
    const sequences: string[] = [];
    const call = client.WatchTask({ taskId }, md);
    call.on("data", (res) => {
      if (res.event) sequences.push(res.event.sequence);
    });
    call.on("error", reject);
    call.on("end", () => resolve(sequences));
  });
}

export function converse(client: DuplexCtor, key: string): GrpcConversation {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${key}`);
  const call = client.Converse(md);
  const all: GrpcConverseResponse[] = [];
  let taken = 0;
  const waiters: (() => void)[] = [];
  let ended = false;
  call.on("data", (res: GrpcConverseResponse) => {
    all.push(res);
    for (const w of waiters.splice(0)) w();
  });
  const status = new Promise<grpc.StatusObject>((resolve) => {
    call.on("status", (s: grpc.StatusObject) => {
      ended = true;
      for (const w of waiters.splice(0)) w();
      resolve(s);
    });
  });
  call.on("error", () => {}); // reported through `status`
  return {
    all,
    status,
    write: (message) => call.write(message),
    end: () => call.end(),
    cancel: () => call.cancel(),
    async waitFor(match, ms = 10_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        while (taken < all.length) {
          const res = all[taken++]!;
          if (match(res)) return res;
        }
        if (ended) throw new Error("the conversation ended before the expected message");
        if (Date.now() > deadline) throw new Error(`no matching message within ${ms} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

export const isState = (state: string) => (res: GrpcConverseResponse) =>
  res.event?.stateChange?.state === `TASK_STATE_${state}`;

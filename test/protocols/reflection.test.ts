// Server reflection (v1 and v1alpha) over a real h2c connection: what grpcurl
// and `buf curl --reflect` ask, and whether the descriptors are complete.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { create, createFileRegistry, equals, fromBinary } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { repoRoot, startTestServer, type TestServer } from "./harness.js";

/** A message_request, in a shape that both versions' `create` accept. */
type Request =
  | { case: "listServices" | "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: undefined };

/** What a test needs from a reply, whichever reflection version produced it. */
interface Reply {
  files?: FileDescriptorProto[];
  services?: string[];
  extensionNumbers?: { baseTypeName: string; numbers: number[] };
  error?: { code: number; message: string };
  originalRequest?: unknown;
}

type Ask = (requests: Request[]) => Promise<Reply[]>;

function toReply(res: v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse): Reply {
  const r = res.messageResponse;
  const originalRequest = res.originalRequest?.messageRequest;
  switch (r.case) {
    case "fileDescriptorResponse":
      return {
        originalRequest,
        files: r.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes)),
      };
    case "listServicesResponse":
      return { originalRequest, services: r.value.service.map((s) => s.name) };
    case "allExtensionNumbersResponse":
      return {
        originalRequest,
        extensionNumbers: { baseTypeName: r.value.baseTypeName, numbers: r.value.extensionNumber },
      };
    case "errorResponse":
      return { originalRequest, error: { code: r.value.errorCode, message: r.value.errorMessage } };
    default:
      throw new Error("empty reflection response");
  }
}

async function* from<T>(items: T[]) {
  yield* items;
}

describe("server reflection", () => {
  let t: TestServer;
  let session: Http2SessionManager;
  let askV1: Ask;
  let askV1alpha: Ask;

  beforeAll(async () => {
    t = await startTestServer();
    session = new Http2SessionManager(t.server.url);
    const transport = createGrpcTransport({ baseUrl: t.server.url, sessionManager: session });
    const clientV1 = createClient(v1.ServerReflection, transport);
    const clientV1alpha = createClient(v1alpha.ServerReflection, transport);
    // One stream per call of ask(): several requests on a stream share its "already sent" set.
    askV1 = async (requests) => {
      const replies: Reply[] = [];
      const stream = clientV1.serverReflectionInfo(
        from(requests.map((messageRequest) => create(v1.ServerReflectionRequestSchema, { messageRequest }))),
      );
      for await (const res of stream) replies.push(toReply(res));
      return replies;
    };
    askV1alpha = async (requests) => {
      const replies: Reply[] = [];
      const stream = clientV1alpha.serverReflectionInfo(
        from(requests.map((messageRequest) => create(v1alpha.ServerReflectionRequestSchema, { messageRequest }))),
      );
      for await (const res of stream) replies.push(toReply(res));
      return replies;
    };
  });

  afterAll(async () => {
    session.abort();
    // Every call has ended, so no connection may be left open: a leaked stream fails here.
    await t.close();
  });

  const versions: Array<{ name: string; ask: () => Ask }> = [
    { name: "v1", ask: () => askV1 },
    { name: "v1alpha", ask: () => askV1alpha },
  ];

  for (const version of versions) {
    describe(version.name, () => {
      it("lists the agentd services, Health and both reflection services", async () => {
        const [reply] = await version.ask()([{ case: "listServices", value: "" }]);
        expect(reply?.services?.sort()).toEqual([
          "agentd.v1.AgentService",
          "agentd.v1.TaskService",
          "agentd.v1.WebhookService",
          "grpc.health.v1.Health",
          "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection",
        ]);
      });

      it("returns the file declaring agentd.v1.TaskService first, then its transitive imports", async () => {
        const [reply] = await version.ask()([{ case: "fileContainingSymbol", value: "agentd.v1.TaskService" }]);
        const names = reply?.files?.map((f) => f.name) ?? [];
        expect(names[0]).toBe("agentd/v1/task_service.proto");
        expect([...names].sort()).toEqual([
          "agentd/v1/task.proto",
          "agentd/v1/task_service.proto",
          "google/protobuf/duration.proto",
          "google/protobuf/struct.proto",
          "google/protobuf/timestamp.proto",
        ]);
        // The set is self-contained: a client can build every request and response type from it.
        const files = reply?.files ?? [];
        const registry = createFileRegistry(files[0] as FileDescriptorProto, (name) =>
          files.find((f) => f.name === name),
        );
        const service = registry.getService("agentd.v1.TaskService");
        expect(service?.methods.map((m) => m.name)).toContain("WatchTask");
        expect(registry.getMessage("agentd.v1.Task")?.field.input?.message?.typeName).toBe("google.protobuf.Value");
      });

      it("finds methods, messages, nested types, enums, enum values and fields", async () => {
        const symbols: Array<[string, string]> = [
          ["agentd.v1.TaskService.GetTask", "agentd/v1/task_service.proto"],
          ["agentd.v1.Task", "agentd/v1/task.proto"],
          ["agentd.v1.TaskState", "agentd/v1/task.proto"],
          ["agentd.v1.TASK_STATE_QUEUED", "agentd/v1/task.proto"],
          ["agentd.v1.Task.input", "agentd/v1/task.proto"],
          ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
          ["grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"],
          ["google.protobuf.Value", "google/protobuf/struct.proto"],
          [`grpc.reflection.${version.name}.ServerReflection`, `grpc/reflection/${version.name}/reflection.proto`],
        ];
        const replies = await version.ask()(
          symbols.map(([symbol]) => ({ case: "fileContainingSymbol", value: symbol })),
        );
        expect(replies.map((r) => r.files?.[0]?.name)).toEqual(symbols.map(([, file]) => file));
      });

      it("does not resend files already sent on the same stream", async () => {
        const [first, second] = await version.ask()([
          { case: "fileContainingSymbol", value: "agentd.v1.TaskService" },
          { case: "fileContainingSymbol", value: "agentd.v1.AgentService" },
        ]);
        expect(first?.files).toHaveLength(5);
        // Of agent_service.proto's imports, only google/rpc/error_details.proto (for
        // ConverseRejection.field_violations) was not in the first answer.
        expect(second?.files?.map((f) => f.name)).toEqual([
          "agentd/v1/agent_service.proto",
          "google/rpc/error_details.proto",
        ]);
      });

      it("returns a file by name, and NOT_FOUND for an unknown name", async () => {
        const [found, missing] = await version.ask()([
          { case: "fileByFilename", value: "google/protobuf/struct.proto" },
          { case: "fileByFilename", value: "no/such.proto" },
        ]);
        expect(found?.files?.map((f) => f.name)).toEqual(["google/protobuf/struct.proto"]);
        expect(missing?.error?.code).toBe(Code.NotFound);
      });

      it("answers an unknown symbol with error_response NOT_FOUND and keeps the stream open", async () => {
        const [missing, after] = await version.ask()([
          { case: "fileContainingSymbol", value: "agentd.v1.NoSuchThing" },
          { case: "fileContainingSymbol", value: "agentd.v1.Task" },
        ]);
        expect(missing?.error).toEqual({ code: Code.NotFound, message: 'symbol "agentd.v1.NoSuchThing" not found' });
        expect(missing?.originalRequest).toEqual({ case: "fileContainingSymbol", value: "agentd.v1.NoSuchThing" });
        expect(after?.files?.[0]?.name).toBe("agentd/v1/task.proto");
      });

      it("knows no extensions: empty numbers for a known type, NOT_FOUND otherwise", async () => {
        const [numbers, unknownType, extension, empty] = await version.ask()([
          { case: "allExtensionNumbersOfType", value: "agentd.v1.Task" },
          { case: "allExtensionNumbersOfType", value: "agentd.v1.NoSuchType" },
          { case: "fileContainingExtension", value: { containingType: "agentd.v1.Task", extensionNumber: 100 } },
          { case: undefined },
        ]);
        expect(numbers?.extensionNumbers).toEqual({ baseTypeName: "agentd.v1.Task", numbers: [] });
        expect(unknownType?.error?.code).toBe(Code.NotFound);
        expect(extension?.error?.code).toBe(Code.NotFound);
        expect(empty?.error?.code).toBe(Code.InvalidArgument);
      });
    });
  }

  it("serves descriptors identical to what buf builds from proto/ (minus source info)", async () => {
    const { stdout } = await promisify(execFile)(
      `${repoRoot}/node_modules/.bin/buf`,
      ["build", "--exclude-source-info", "--as-file-descriptor-set", "-o", "-#format=binpb"],
      { cwd: repoRoot, encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
    );
    const built = new Map(fromBinary(FileDescriptorSetSchema, stdout).file.map((f) => [f.name, f]));
    const replies = await askV1(
      ["agentd.v1.AgentService", "agentd.v1.TaskService", "agentd.v1.WebhookService", "grpc.health.v1.Health"].map(
        (value) => ({ case: "fileContainingSymbol", value }),
      ),
    );
    const served = replies.flatMap((r) => r.files ?? []);
    expect(served.length).toBeGreaterThanOrEqual(9);
    for (const file of served) {
      const expected = built.get(file.name);
      expect(expected, file.name).toBeDefined();
      expect(equals(FileDescriptorProtoSchema, file, expected as FileDescriptorProto), file.name).toBe(true);
    }
  });
});

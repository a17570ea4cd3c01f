// Connect service implementations served by a grpc-js Server (server/grpc-js/) on the one
// port, beside connect-node: unary, server streaming and bidi from real clients, interceptors
// seeing every call, errors with their code and google.rpc.Status details, response headers and
// trailers, and undecodable bytes answered INVALID_ARGUMENT, not INTERNAL.
import * as http2 from "node:http2";
import { create, createFileRegistry, type DescMessage, type DescService } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { addConnectRoutes } from "../../services/agent/server/grpc-js/index.js";
import { createGrpcJsInjector } from "../../services/agent/server/grpc-js/injector.js";
import { createHealthService } from "../../services/agent/server/health.js";
import { listenOnePort, type OnePortServer } from "../../services/agent/server/one-port.js";
import { createReflectionRoutes } from "../../services/agent/server/reflection.js";
import { silentLogger } from "../../services/shared/log.js";
import { grpcCheck, grpcHealthClient, reflectedFiles } from "./harness.js";

/** A client-streaming method, which agentd's API has none of: Tally/Add sums the counts it is sent. */
function tallyService(): DescService {
  const file = create(FileDescriptorProtoSchema, {
    name: "test/tally.proto",
    package: "test.tally",
    syntax: "proto3",
    messageType: [
      {
        name: "Count",
        field: [
          {
            name: "n",
            jsonName: "n",
            number: 1,
            type: FieldDescriptorProto_Type.INT32,
            label: FieldDescriptorProto_Label.OPTIONAL,
          },
        ],
      },
    ],
    service: [
      {
        name: "Tally",
        method: [
          { name: "Add", inputType: ".test.tally.Count", outputType: ".test.tally.Count", clientStreaming: true },
        ],
      },
    ],
  });
  return createFileRegistry(file, () => undefined).getService("test.tally.Tally")!;
}

type Count = { n: number };

const tally = tallyService();

/** Adds up the counts; a negative total is refused, and the total also goes out as a trailer. */
async function add(requests: AsyncIterable<Count>, ctx: HandlerContext): Promise<Count> {
  let n = 0;
  for await (const count of requests) n += count.n;
  if (n < 0) throw new ConnectError("the total may not be negative", Code.InvalidArgument);
  ctx.responseTrailer.set("x-total", String(n));
  return { n };
}

describe("connect handlers served by grpc-js", () => {
  let server: OnePortServer;
  let grpcServer: grpc.Server;
  let url: string;
  const intercepted: string[] = [];
  const managers: Http2SessionManager[] = [];

  beforeAll(async () => {
    const health = createHealthService();
    const reflection = createReflectionRoutes(reflectedFiles);
    const routes = (router: ConnectRouter) => {
      health.routes(router);
      reflection(router);
      router.service(tally, { add } as never);
    };
    // As the auth interceptor does: refuse before the handler, with details; stamp responses.
    const interceptor: Interceptor = (next) => async (req) => {
      intercepted.push(`${req.header.get("content-type")} ${req.method.name}`);
      if (req.header.get("authorization") === "Bearer wrong") {
        throw new ConnectError("API key not recognised", Code.Unauthenticated, undefined, [
          { desc: ErrorInfoSchema, value: { reason: "API_KEY_INVALID", domain: "agentd" } },
        ]);
      }
      const res = await next(req);
      res.header.set("x-served-by", "interceptor");
      return res;
    };
    grpcServer = new grpc.Server();
    addConnectRoutes(grpcServer, { routes, interceptors: [interceptor] });
    const adapter = connectNodeAdapter({ routes, interceptors: [interceptor] });
    server = await listenOnePort({
      handler: adapter,
      host: "127.0.0.1",
      port: 0,
      grpc: (otherStreams) => createGrpcJsInjector(grpcServer, otherStreams, silentLogger()),
    });
    url = server.url;
  });

  afterAll(async () => {
    for (const m of managers) m.abort();
    await server.close({ graceMs: 2_000 });
    grpcServer.forceShutdown();
  });

  function transport() {
    const sessionManager = new Http2SessionManager(url);
    managers.push(sessionManager);
    return createGrpcTransport({ baseUrl: url, sessionManager });
  }

  it("answers a grpc-js client's unary call through the interceptors, with their header", async () => {
    const client = grpcHealthClient(url);
    try {
      intercepted.length = 0;
      const header = await new Promise<grpc.Metadata>((resolve, reject) => {
        // The typed helper hides the call object grpc-js returns; its "metadata" event carries the header.
        const call = client.Check({ service: "" }, (err) => err && reject(err)) as unknown as grpc.ClientUnaryCall;
        call.on("metadata", resolve);
      });
      expect(header.get("x-served-by")).toEqual(["interceptor"]);
      await expect(grpcCheck(client, "")).resolves.toEqual({ status: "SERVING" });
      expect(intercepted).toEqual(["application/grpc+proto Check", "application/grpc+proto Check"]);
    } finally {
      client.close();
    }
  });

  it("maps errors to their code, message and details", async () => {
    const health = createClient(Health, transport());
    const missing = await health.check({ service: "nope" }).catch((e: unknown) => ConnectError.from(e));
    expect(missing).toBeInstanceOf(ConnectError);
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    const refused = await health
      .check({ service: "" }, { headers: { authorization: "Bearer wrong" } })
      .catch((e: unknown) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(Code.Unauthenticated);
    expect((refused as ConnectError).rawMessage).toBe("API key not recognised");
    expect((refused as ConnectError).findDetails(ErrorInfoSchema)).toEqual([
      expect.objectContaining({ reason: "API_KEY_INVALID", domain: "agentd" }),
    ]);
  });

  it("streams a server-streaming call until the client cancels it", async () => {
    const health = createClient(Health, transport());
    const abort = new AbortController();
    const seen: Status[] = [];
    try {
      for await (const res of health.watch({ service: "" }, { signal: abort.signal })) {
        seen.push(res.status);
        abort.abort();
      }
    } catch (err) {
      expect(ConnectError.from(err).code).toBe(Code.Canceled);
    }
    expect(seen).toEqual([Status.SERVING]);
  });

  it("serves a bidi stream (reflection), one reply per request", async () => {
    const reflection = createClient(v1.ServerReflection, transport());
    async function* requests() {
      yield create(v1.ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
      yield create(v1.ServerReflectionRequestSchema, {
        messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" },
      });
    }
    const kinds: Array<string | undefined> = [];
    for await (const res of reflection.serverReflectionInfo(requests())) kinds.push(res.messageResponse.case);
    expect(kinds).toEqual(["listServicesResponse", "fileDescriptorResponse"]);
  });

  it("answers undecodable request bytes with INVALID_ARGUMENT, not INTERNAL", async () => {
    const client = http2.connect(url);
    try {
      const stream = client.request({
        ":method": "POST",
        ":path": "/grpc.health.v1.Health/Check",
        "content-type": "application/grpc",
        te: "trailers",
      });
      // A length-delimited field 1 that claims 100 bytes with 1 present.
      stream.end(Buffer.from([0, 0, 0, 0, 3, 0x0a, 100, 0x41]));
      // An error may come trailers-only: the status is then in the response headers.
      const status = await new Promise<unknown>((resolve, reject) => {
        stream.on("response", (h) => h["grpc-status"] !== undefined && resolve(h["grpc-status"]));
        stream.on("trailers", (t) => resolve(t["grpc-status"]));
        stream.on("error", reject);
        stream.resume();
      });
      expect(status).toBe(String(grpc.status.INVALID_ARGUMENT));
    } finally {
      client.close();
    }
  });

  it("serves a client stream through the interceptors, with the response's header and trailer", async () => {
    intercepted.length = 0;
    const client = createClient(tally, transport()) as unknown as {
      add(
        requests: AsyncIterable<Count>,
        options: { onHeader(h: Headers): void; onTrailer(t: Headers): void },
      ): Promise<DescMessage & Count>;
    };
    async function* counts(...ns: number[]) {
      for (const n of ns) yield { n };
    }
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const sum = await client.add(counts(1, 2, 3), { onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) });
    expect(sum.n).toBe(6);
    expect(header?.get("x-served-by")).toBe("interceptor");
    expect(trailer?.get("x-total")).toBe("6");
    expect(intercepted).toEqual(["application/grpc+proto Add"]);
    const refused = await client
      .add(counts(1, -5), { onHeader: () => {}, onTrailer: () => {} })
      .catch((e: unknown) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(Code.InvalidArgument);
    expect((refused as ConnectError).rawMessage).toBe("the total may not be negative");
  });
});

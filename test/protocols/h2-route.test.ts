// The one port with a grpc-js server beside connect-node (one-port.ts `grpc` option, h2-route.ts):
// every HTTP/2 connection is routed whole by its first request's content-type. Real clients on a
// loopback port: grpc-js and connect-node's gRPC transport land on grpc-js; Connect and gRPC-Web
// (h2c and HTTP/1.1) stay on connect-node; a client that waits for the server's SETTINGS first
// still gets its answer; a graceful close drains both servers.
import * as http2 from "node:http2";
import { create, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { createClient } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  type HealthCheckRequest,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.js";
import { createGrpcJsInjector } from "../../services/agent/server/grpc-js/injector.js";
import { createHealthService } from "../../services/agent/server/health.js";
import { listenOnePort, type OnePortServer } from "../../services/agent/server/one-port.js";
import { silentLogger } from "../../services/shared/log.js";
import { grpcCheck, grpcHealthClient } from "./harness.js";

function codec<S extends GenMessage<never>>(schema: S) {
  return {
    serialize: (m: MessageShape<S>) => Buffer.from(toBinary(schema, m)),
    deserialize: (b: Buffer) => fromBinary(schema, b),
  };
}
const req = codec(HealthCheckRequestSchema as GenMessage<never>);
const res = codec(HealthCheckResponseSchema as GenMessage<never>);
const method = (name: string, responseStream: boolean) => ({
  path: `/grpc.health.v1.Health/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: req.serialize,
  requestDeserialize: req.deserialize,
  responseSerialize: res.serialize,
  responseDeserialize: res.deserialize,
});

/** The raw gRPC frame of a HealthCheckRequest (1-byte flag, 4-byte length, message). */
function grpcFrame(service: string): Buffer {
  const body = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

describe("one port routing HTTP/2 connections between connect-node and grpc-js", () => {
  let server: OnePortServer;
  let grpcServer: grpc.Server;
  let url: string;
  /** Which server answered each call. */
  const answered: Array<"connect" | "grpc-js"> = [];
  const counted: Array<"connect" | "grpc-js"> = [];
  const managers: Http2SessionManager[] = [];

  beforeAll(async () => {
    const health = createHealthService();
    const adapter = connectNodeAdapter({ routes: health.routes });
    grpcServer = new grpc.Server();
    grpcServer.addService(
      { Check: method("Check", false), Watch: method("Watch", true) } as unknown as grpc.ServiceDefinition,
      {
        Check: (
          call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
          cb: grpc.sendUnaryData<HealthCheckResponse>,
        ) => {
          answered.push("grpc-js");
          if (call.request.service === "missing") {
            cb({ code: grpc.status.NOT_FOUND, details: "no service named missing" });
            return;
          }
          cb(null, create(HealthCheckResponseSchema, { status: Status.SERVING }));
        },
        Watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
          answered.push("grpc-js");
          call.write(create(HealthCheckResponseSchema, { status: Status.SERVING }));
          call.write(create(HealthCheckResponseSchema, { status: Status.NOT_SERVING }));
          call.end();
        },
      },
    );
    server = await listenOnePort({
      handler: (rq, rs) => {
        answered.push("connect");
        adapter(rq, rs);
      },
      host: "127.0.0.1",
      port: 0,
      grpc: (otherStreams) => createGrpcJsInjector(grpcServer, otherStreams, silentLogger()),
      onH2Connection: (name) => counted.push(name),
    });
    url = server.url;
  });

  afterAll(async () => {
    for (const m of managers) m.abort();
    await server.close({ graceMs: 2_000 });
    grpcServer.forceShutdown();
  });

  function session(): Http2SessionManager {
    const m = new Http2SessionManager(url);
    managers.push(m);
    return m;
  }

  it("serves a grpc-js client's unary and server-streaming calls from grpc-js", async () => {
    const client = grpcHealthClient(url);
    try {
      answered.length = 0;
      await expect(grpcCheck(client, "")).resolves.toEqual({ status: "SERVING" });
      const statuses: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = client.Watch({ service: "" });
        call.on("data", (m: { status: string }) => statuses.push(m.status));
        call.on("error", reject);
        call.on("end", () => resolve());
      });
      expect(statuses).toEqual(["SERVING", "NOT_SERVING"]);
      await expect(grpcCheck(client, "missing")).rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
        details: "no service named missing",
      });
      expect(answered).toEqual(["grpc-js", "grpc-js", "grpc-js"]);
    } finally {
      client.close();
    }
  });

  it("serves connect-node's gRPC transport from grpc-js, Connect and gRPC-Web from connect-node", async () => {
    const grpcClient = createClient(Health, createGrpcTransport({ baseUrl: url, sessionManager: session() }));
    const connectH2 = createClient(
      Health,
      createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager: session() }),
    );
    const webH2 = createClient(
      Health,
      createGrpcWebTransport({ baseUrl: url, httpVersion: "2", sessionManager: session() }),
    );
    const connectH1 = createClient(Health, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
    answered.length = 0;
    for (const client of [grpcClient, connectH2, webH2, connectH1]) {
      expect((await client.check({ service: "" })).status).toBe(Status.SERVING);
    }
    expect(answered).toEqual(["grpc-js", "connect", "connect", "connect"]);
    expect(counted).toContain("grpc-js");
    expect(counted).toContain("connect");
  });

  it("serves a Connect or gRPC-Web request on a connection grpc-js took through connect-node", async () => {
    const client = http2.connect(url);
    const ask = (headers: http2.OutgoingHttpHeaders, body: Buffer) =>
      new Promise<{ status: number | undefined; body: string; trailers: http2.IncomingHttpHeaders }>(
        (resolve, reject) => {
          const stream = client.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", ...headers });
          let status: number | undefined;
          let trailers: http2.IncomingHttpHeaders = {};
          const chunks: Buffer[] = [];
          stream.on("response", (h) => {
            status = h[":status"];
          });
          stream.on("trailers", (t) => {
            trailers = t;
          });
          stream.on("data", (c: Buffer) => chunks.push(c));
          stream.on("end", () => resolve({ status, body: Buffer.concat(chunks).toString("latin1"), trailers }));
          stream.on("error", reject);
          stream.end(body);
        },
      );
    try {
      answered.length = 0;
      const first = await ask({ "content-type": "application/grpc", te: "trailers" }, grpcFrame(""));
      expect(first.trailers["grpc-status"]).toBe("0");
      const connect = await ask({ "content-type": "application/json" }, Buffer.from("{}"));
      expect(connect.status).toBe(200);
      expect(JSON.parse(connect.body)).toEqual({ status: "SERVING" });
      const web = await ask({ "content-type": "application/grpc-web+proto" }, grpcFrame(""));
      expect(web.status).toBe(200);
      expect(web.body).toMatch(/grpc-status: ?0\r\n/);
      const again = await ask({ "content-type": "application/grpc", te: "trailers" }, grpcFrame(""));
      expect(again.trailers["grpc-status"]).toBe("0");
      expect(answered).toEqual(["grpc-js", "connect", "connect", "grpc-js"]);
    } finally {
      client.close();
    }
  });

  it("answers a client that sends its request only after the server's SETTINGS", async () => {
    const client = http2.connect(url);
    try {
      await new Promise<void>((resolve, reject) => {
        client.once("remoteSettings", () => resolve());
        client.once("error", reject);
      });
      const stream = client.request({
        ":method": "POST",
        ":path": "/grpc.health.v1.Health/Check",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.end(grpcFrame(""));
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.on("trailers", resolve);
        stream.on("error", reject);
        stream.resume();
      });
      expect(trailers["grpc-status"]).toBe("0");
      // The connection stays usable: the stripped SETTINGS ACK did not confuse grpc-js.
      const second = client.request({
        ":method": "POST",
        ":path": "/grpc.health.v1.Health/Check",
        "content-type": "application/grpc",
        te: "trailers",
      });
      second.end(grpcFrame(""));
      const again = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        second.on("trailers", resolve);
        second.on("error", reject);
        second.resume();
      });
      expect(again["grpc-status"]).toBe("0");
    } finally {
      client.close();
    }
  });

  it("hands a connection whose first request is not gRPC to connect-node", async () => {
    const client = http2.connect(url);
    try {
      await new Promise<void>((resolve, reject) => {
        client.once("remoteSettings", () => resolve());
        client.once("error", reject);
      });
      const stream = client.request({ ":method": "GET", ":path": "/grpc.health.v1.Health/Check" });
      const status = await new Promise<number | undefined>((resolve) => {
        stream.on("response", (h) => resolve(h[":status"]));
        stream.on("error", () => resolve(undefined));
        stream.end();
      });
      stream.resume();
      expect(status).toBeDefined(); // no content-type: connect-node answered it
      expect(answered.at(-1)).toBe("connect");
    } finally {
      client.close();
    }
  });
});

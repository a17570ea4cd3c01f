// Protocol tier: a real server on one port, called by real clients in every
// protocol the agent service promises (gRPC, Connect, gRPC-Web; HTTP/1.1 and h2c).
import { randomBytes } from "node:crypto";
import * as net from "node:net";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { detectProtocol } from "../../services/agent/server/one-port.js";
import { until } from "../support/until.js";
import {
  bufCurl,
  type GrpcHealthClient,
  grpcCheck,
  grpcHealthClient,
  slowProxy,
  startTestServer,
  type TestServer,
} from "./harness.js";

const TASK_SERVICE = "agentd.v1.TaskService";

describe("detectProtocol", () => {
  const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

  it("needs more bytes while the input is a strict prefix of the HTTP/2 preface", () => {
    for (let n = 0; n < preface.length; n++) expect(detectProtocol(preface.subarray(0, n))).toBeUndefined();
  });

  it("recognises the full preface, with or without frames after it", () => {
    expect(detectProtocol(preface)).toBe("h2");
    expect(detectProtocol(Buffer.concat([preface, Buffer.from([0, 0, 0, 4, 0])]))).toBe("h2");
  });

  it("decides HTTP/1.1 at the first byte that leaves the preface", () => {
    expect(detectProtocol(Buffer.from("POST /x HTTP/1.1\r\n"))).toBe("http1");
    expect(detectProtocol(Buffer.from("P"))).toBeUndefined();
    expect(detectProtocol(Buffer.from("PO"))).toBe("http1");
    expect(detectProtocol(Buffer.from("PRI * HTTP/1.1"))).toBe("http1");
  });
});

describe("one port, every protocol", () => {
  let t: TestServer;
  let url: string;
  const h2Sessions: Http2SessionManager[] = [];
  const grpcClients: grpc.Client[] = [];

  function h2Session(): Http2SessionManager {
    const manager = new Http2SessionManager(url);
    h2Sessions.push(manager);
    return manager;
  }

  async function checkWith(transport: Transport, service = "") {
    return createClient(Health, transport).check({ service });
  }

  beforeAll(async () => {
    t = await startTestServer();
    url = t.server.url;
    t.health.setStatus(TASK_SERVICE, "SERVING");
  });

  afterAll(async () => {
    for (const client of grpcClients) client.close();
    for (const manager of h2Sessions) manager.abort();
    // Every call has ended, so no connection may be left open: a leaked stream fails here.
    await t.close();
  });

  function lastSeen() {
    return t.seen[t.seen.length - 1];
  }

  describe("gRPC over h2c", () => {
    it("grpc-js checks the whole server and a registered service", async () => {
      const client = grpcHealthClient(url);
      grpcClients.push(client);
      await expect(grpcCheck(client, "")).resolves.toEqual({ status: "SERVING" });
      await expect(grpcCheck(client, TASK_SERVICE)).resolves.toEqual({ status: "SERVING" });
      expect(lastSeen()).toMatchObject({ httpVersion: "2.0", contentType: "application/grpc" });
    });

    it("grpc-js gets NOT_FOUND for an unknown service", async () => {
      const client = grpcHealthClient(url);
      grpcClients.push(client);
      await expect(grpcCheck(client, "no.such.Service")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    });

    it("connect-node's gRPC transport checks health", async () => {
      const transport = createGrpcTransport({ baseUrl: url, sessionManager: h2Session() });
      expect((await checkWith(transport, TASK_SERVICE)).status).toBe(Status.SERVING);
      expect(lastSeen()).toMatchObject({ httpVersion: "2.0", contentType: "application/grpc+proto" });
    });

    it("grpc-js streams Watch: unknown first, then every change", async () => {
      const client = grpcHealthClient(url);
      grpcClients.push(client);
      const call = client.Watch({ service: "agentd.v1.WebhookService" });
      const received: string[] = [];
      call.on("data", (msg: { status: string }) => received.push(msg.status));
      const ended = new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));

      await until(
        () => received.length,
        (n) => n === 1,
        { ms: 5_000, what: "first Watch message" },
      );
      t.health.setStatus("agentd.v1.WebhookService", "SERVING");
      await until(
        () => received.length,
        (n) => n === 2,
        { ms: 5_000, what: "second Watch message" },
      );
      t.health.setStatus("agentd.v1.WebhookService", "NOT_SERVING");
      await until(
        () => received.length,
        (n) => n === 3,
        { ms: 5_000, what: "third Watch message" },
      );
      expect(received).toEqual(["SERVICE_UNKNOWN", "SERVING", "NOT_SERVING"]);

      call.cancel();
      expect((await ended).code).toBe(grpc.status.CANCELLED);
    });
  });

  describe("Connect", () => {
    it("JSON over HTTP/1.1 with connect-node", async () => {
      const transport = createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false });
      expect((await checkWith(transport)).status).toBe(Status.SERVING);
      expect(lastSeen()).toMatchObject({ httpVersion: "1.1", contentType: "application/json" });
    });

    it("JSON over HTTP/1.1 with a plain fetch, and a Connect error for an unknown service", async () => {
      const post = (body: unknown) =>
        fetch(`${url}/grpc.health.v1.Health/Check`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const ok = await post({ service: TASK_SERVICE });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ status: "SERVING" });

      const missing = await post({ service: "no.such.Service" });
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ code: "not_found" });
    });

    it("binary over h2c", async () => {
      const transport = createConnectTransport({
        baseUrl: url,
        httpVersion: "2",
        useBinaryFormat: true,
        sessionManager: h2Session(),
      });
      expect((await checkWith(transport)).status).toBe(Status.SERVING);
      expect(lastSeen()).toMatchObject({ httpVersion: "2.0", contentType: "application/proto" });
    });

    it("server streaming over HTTP/1.1 (Watch)", async () => {
      const transport = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
      const abort = new AbortController();
      const statuses: Status[] = [];
      try {
        for await (const res of createClient(Health, transport).watch({ service: "" }, { signal: abort.signal })) {
          statuses.push(res.status);
          abort.abort();
        }
      } catch (err) {
        expect(ConnectError.from(err).code).toBe(Code.Canceled);
      }
      expect(statuses).toEqual([Status.SERVING]);
    });
  });

  describe("gRPC-Web", () => {
    it("over HTTP/1.1", async () => {
      const transport = createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" });
      expect((await checkWith(transport, TASK_SERVICE)).status).toBe(Status.SERVING);
      expect(lastSeen()).toMatchObject({ httpVersion: "1.1", contentType: "application/grpc-web+proto" });
    });

    it("over h2c", async () => {
      const transport = createGrpcWebTransport({ baseUrl: url, httpVersion: "2", sessionManager: h2Session() });
      expect((await checkWith(transport, TASK_SERVICE)).status).toBe(Status.SERVING);
      expect(lastSeen()).toMatchObject({ httpVersion: "2.0", contentType: "application/grpc-web+proto" });
    });

    it("reports an unknown service as NOT_FOUND", async () => {
      const transport = createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" });
      await expect(checkWith(transport, "no.such.Service")).rejects.toMatchObject({ code: Code.NotFound });
    });
  });

  describe("buf curl", () => {
    const check = () => `${url}/grpc.health.v1.Health/Check`;
    const cases: Array<{ name: string; flags: string[]; httpVersion: string }> = [
      {
        name: "gRPC, reflection",
        flags: ["--protocol", "grpc", "--http2-prior-knowledge", "--reflect"],
        httpVersion: "2.0",
      },
      { name: "Connect, reflection", flags: ["--protocol", "connect", "--reflect"], httpVersion: "2.0" },
      { name: "gRPC-Web, reflection", flags: ["--protocol", "grpcweb", "--reflect"], httpVersion: "2.0" },
      {
        name: "gRPC, --schema",
        flags: ["--protocol", "grpc", "--http2-prior-knowledge", "--schema", "proto"],
        httpVersion: "2.0",
      },
      { name: "Connect, --schema", flags: ["--protocol", "connect", "--schema", "proto"], httpVersion: "1.1" },
      { name: "gRPC-Web, --schema", flags: ["--protocol", "grpcweb", "--schema", "proto"], httpVersion: "1.1" },
    ];

    for (const c of cases) {
      it(`${c.name}: checks health, and exits with NOT_FOUND for an unknown service`, async () => {
        const ok = await bufCurl([...c.flags, "-d", JSON.stringify({ service: TASK_SERVICE }), check()]);
        expect(ok.stderr).toBe("");
        expect(JSON.parse(ok.stdout)).toEqual({ status: "SERVING" });
        expect(ok.code).toBe(0);
        expect(lastSeen()?.httpVersion).toBe(c.httpVersion);

        const missing = await bufCurl([...c.flags, "-d", JSON.stringify({ service: "no.such.Service" }), check()]);
        // buf curl exits with the gRPC code shifted left by three bits.
        expect(missing.code).toBe(Code.NotFound << 3);
      });
    }

    it("lists the services by reflection", async () => {
      const res = await bufCurl(["--list-services", url]);
      expect(res.code).toBe(0);
      expect(res.stdout.trim().split("\n").sort()).toEqual(
        [
          "agentd.v1.AgentService",
          "agentd.v1.TaskService",
          "agentd.v1.WebhookService",
          "grpc.health.v1.Health",
          "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection",
        ].sort(),
      );
    });

    it("builds an agentd request from reflected descriptors (the method is not mounted here)", async () => {
      // Reaching the server at all proves buf resolved GetTaskRequest and its imports by reflection.
      const res = await bufCurl([
        "--protocol",
        "grpc",
        "-d",
        '{"taskId":"t1"}',
        `${url}/agentd.v1.TaskService/GetTask`,
      ]);
      expect(res.code).toBe(Code.Unimplemented << 3);
      expect(lastSeen()?.path).toBe("/agentd.v1.TaskService/GetTask");

      const bad = await bufCurl([
        "--protocol",
        "grpc",
        "-d",
        '{"noSuchField":1}',
        `${url}/agentd.v1.TaskService/GetTask`,
      ]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("noSuchField");
    });
  });

  describe("hostile and slow clients", () => {
    function rawConnection(): Promise<net.Socket> {
      return new Promise((resolve, reject) => {
        const socket = net.connect(t.server.port, "127.0.0.1", () => resolve(socket));
        socket.on("error", reject);
      });
    }

    function closed(socket: net.Socket): Promise<void> {
      return new Promise((resolve) => {
        if (socket.destroyed) resolve();
        else socket.on("close", () => resolve());
      });
    }

    async function stillServes() {
      const transport = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
      expect((await checkWith(transport)).status).toBe(Status.SERVING);
    }

    it("answers random bytes by closing that connection, and keeps serving", async () => {
      for (let i = 0; i < 5; i++) {
        const socket = await rawConnection();
        socket.on("error", () => {});
        socket.resume();
        socket.write(randomBytes(2048));
        await closed(socket);
      }
      await stillServes();
    });

    it("drops an HTTP/2 connection whose frames after the preface are garbage", async () => {
      const socket = await rawConnection();
      socket.on("error", () => {});
      socket.resume();
      socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), randomBytes(512)]));
      await closed(socket);
      await stillServes();
    });

    it("forgets clients that leave before or while being sniffed", async () => {
      const before = t.server.openConnections();
      const silent = await rawConnection();
      silent.end();
      const partial = await rawConnection();
      partial.write("PRI * HT");
      partial.end();
      const reset = await rawConnection();
      reset.write("PRI");
      await new Promise((r) => setTimeout(r, 20));
      reset.resetAndDestroy(); // the server sees ECONNRESET mid-sniff
      await Promise.all([closed(silent), closed(partial), closed(reset)]);
      await until(
        () => t.server.openConnections(),
        (n) => n <= before,
        { ms: 5_000, what: "sniffed sockets to be released" },
      );
      await stillServes();
    });

    it("serves a client that sends the preface one byte at a time (gRPC and HTTP/1.1)", async () => {
      const proxy = await slowProxy(t.server.port);
      const client: GrpcHealthClient = grpcHealthClient(proxy.url);
      try {
        await expect(grpcCheck(client, TASK_SERVICE)).resolves.toEqual({ status: "SERVING" });
        const transport = createConnectTransport({ baseUrl: proxy.url, httpVersion: "1.1" });
        expect((await checkWith(transport)).status).toBe(Status.SERVING);
      } finally {
        client.close();
        await proxy.close();
      }
    });
  });
});

describe("request size limit", () => {
  it("refuses a body whose declared length is over maxRequestBytes, before the handler runs", async () => {
    const { server, seen } = await startTestServer({ maxRequestBytes: 1_024 });
    try {
      const post = (service: string) =>
        fetch(`${server.url}/grpc.health.v1.Health/Check`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ service }),
        });
      const small = await post("");
      expect(small.status).toBe(200);
      await small.text();
      const large = await post("x".repeat(2_048));
      expect(large.status).toBe(413);
      await large.text();
      expect(seen).toHaveLength(1);
    } finally {
      await server.close({ graceMs: 2_000 });
    }
    expect(server.openConnections()).toBe(0);
  });
});

describe("graceful close", () => {
  it("lets a Watch end cleanly after health shutdown, closes idle keep-alive connections, then refuses connections", async () => {
    const { server, health } = await startTestServer();
    const client = grpcHealthClient(server.url);
    const call = client.Watch({ service: "" });
    const received: string[] = [];
    call.on("data", (msg: { status: string }) => received.push(msg.status));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("error", () => {});
    await until(
      () => received.length,
      (n) => n === 1,
      { ms: 5_000, what: "first Watch message" },
    );

    // An idle HTTP/1.1 keep-alive connection, and a Connect server stream over HTTP/1.1.
    expect(
      (
        await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        })
      ).status,
    ).toBe(200);
    const h1Stream = createClient(Health, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })).watch({
      service: "",
    });
    const h1Statuses: Status[] = [];
    const h1Done = (async () => {
      for await (const res of h1Stream) h1Statuses.push(res.status);
    })();
    await until(
      () => h1Statuses.length,
      (n) => n === 1,
      { ms: 5_000, what: "first HTTP/1.1 Watch message" },
    );

    const started = Date.now();
    health.shutdown();
    await server.close({ graceMs: 5_000 });
    expect(Date.now() - started).toBeLessThan(2_000); // nothing had to wait for the grace period
    expect(server.openConnections()).toBe(0);

    expect(received).toEqual(["SERVING", "NOT_SERVING"]);
    expect((await status).code).toBe(grpc.status.OK);
    await h1Done;
    expect(h1Statuses).toEqual([Status.SERVING, Status.NOT_SERVING]);

    await expect(grpcCheck(client, "")).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await expect(
      new Promise((resolve, reject) =>
        net.connect(server.port, "127.0.0.1", () => resolve("connected")).on("error", reject),
      ),
    ).rejects.toMatchObject({ code: "ECONNREFUSED" });
    client.close();
  });

  it("cuts a stream that outlives the grace period, and leaves no connection open", async () => {
    const { server } = await startTestServer();
    const client = grpcHealthClient(server.url);
    const call = client.Watch({ service: "" });
    const received: string[] = [];
    call.on("data", (msg: { status: string }) => received.push(msg.status));
    const failed = new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
    await until(
      () => received.length,
      (n) => n === 1,
      { ms: 5_000, what: "first Watch message" },
    );

    const started = Date.now();
    await server.close({ graceMs: 300 });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(3_000);
    expect(server.openConnections()).toBe(0);
    // The session got GOAWAY at once; the socket is destroyed when the grace period ends.
    expect((await failed).code).toBe(grpc.status.UNAVAILABLE);
    client.close();
  });

  it("serves a request whose first bytes arrived before close, with Connection: close; drops silent sockets", async () => {
    const { server } = await startTestServer();
    const connect = () =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect(server.port, "127.0.0.1", () => resolve(socket));
        socket.on("error", reject);
      });
    const silent = await connect();
    const silentClosed = new Promise<void>((resolve) => silent.on("close", () => resolve()));
    const busy = await connect();
    let response = "";
    busy.on("data", (chunk: Buffer) => {
      response += chunk.toString("latin1");
    });
    const busyClosed = new Promise<void>((resolve) => busy.on("close", () => resolve()));
    busy.write("P"); // still a prefix of the HTTP/2 preface: the server keeps sniffing
    await new Promise((r) => setTimeout(r, 50));

    const closing = server.close({ graceMs: 5_000 });
    busy.write(
      "OST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    await Promise.all([closing, silentClosed, busyClosed]);
    expect(response).toMatch(/^HTTP\/1\.1 200 /);
    expect(response.toLowerCase()).toContain("connection: close");
    expect(response).toContain('{"status":"SERVING"}');
    expect(server.openConnections()).toBe(0);
  });

  it("is idempotent", async () => {
    const { server } = await startTestServer();
    const first = server.close();
    expect(server.close()).toBe(first);
    await first;
    expect(server.openConnections()).toBe(0);
  });
});

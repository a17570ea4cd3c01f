// Connections without work are reaped (issue 7, part 4): an HTTP/2 session with
// no stream, an HTTP/2 client that sends the preface and nothing else, an
// HTTP/1.1 body that trickles in, an idle keep-alive connection. Open streams,
// however quiet, keep their connection.
import * as http2 from "node:http2";
import * as net from "node:net";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createHealthService } from "../../services/agent/server/health.js";
import { listenOnePort, type OnePortServer } from "../../services/agent/server/one-port.js";
import { until } from "../support/until.js";

const IDLE_MS = 400;
const HEADERS_MS = 400;
const REQUEST_MS = 800;
/** Generous: the reaping itself is checked, not its punctuality, on a loaded machine. */
const WITHIN_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("idle connections are reaped", () => {
  let server: OnePortServer;

  beforeAll(async () => {
    const health = createHealthService();
    server = await listenOnePort({
      handler: connectNodeAdapter({ routes: health.routes }),
      host: "127.0.0.1",
      port: 0,
      timeouts: { idleMs: IDLE_MS, headersMs: HEADERS_MS, requestMs: REQUEST_MS },
    });
  });

  afterAll(async () => {
    await server.close({ graceMs: 2_000 });
    expect(server.openConnections()).toBe(0);
  });

  function closedBy(emitter: { once(event: "close", fn: () => void): unknown }): Promise<void> {
    return new Promise((resolve) => emitter.once("close", () => resolve()));
  }

  it("closes an HTTP/2 session with no stream open", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    const closed = closedBy(session);
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
    await expect(Promise.race([closed.then(() => "closed"), sleep(WITHIN_MS).then(() => "open")])).resolves.toBe(
      "closed",
    );
  });

  it("closes an HTTP/2 session after its last stream ends, not while the stream is open", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    const closed = closedBy(session);
    let isClosed = false;
    void closed.then(() => {
      isClosed = true;
    });
    // A server stream that sends nothing after its first message: open, but quiet.
    const stream = session.request({
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Watch",
      "content-type": "application/connect+json",
    });
    stream.on("error", () => {});
    const envelope = Buffer.alloc(5 + 2);
    envelope.writeUInt32BE(2, 1);
    envelope.write("{}", 5);
    stream.end(envelope);
    await new Promise<void>((resolve) => stream.once("data", () => resolve()));
    await sleep(IDLE_MS * 4);
    expect(isClosed).toBe(false);
    stream.close();
    await expect(Promise.race([closed.then(() => "closed"), sleep(WITHIN_MS).then(() => "open")])).resolves.toBe(
      "closed",
    );
  });

  it("drops an HTTP/2 client that sends the preface and nothing else", async () => {
    const socket = net.connect(server.port, "127.0.0.1");
    socket.on("error", () => {});
    socket.on("data", () => {});
    const closed = closedBy(socket);
    socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    await expect(Promise.race([closed.then(() => "closed"), sleep(WITHIN_MS).then(() => "open")])).resolves.toBe(
      "closed",
    );
  });

  it("answers 408 to an HTTP/1.1 body that trickles in, and closes the connection", async () => {
    const socket = net.connect(server.port, "127.0.0.1");
    socket.on("error", () => {});
    let answer = "";
    socket.on("data", (d: Buffer) => {
      answer += d.toString("latin1");
    });
    const closed = closedBy(socket);
    socket.write(
      "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
    );
    const trickle = setInterval(() => socket.writable && socket.write(" "), 100);
    try {
      await expect(Promise.race([closed.then(() => "closed"), sleep(WITHIN_MS).then(() => "open")])).resolves.toBe(
        "closed",
      );
    } finally {
      clearInterval(trickle);
    }
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it("closes an idle HTTP/1.1 keep-alive connection", async () => {
    const socket = net.connect(server.port, "127.0.0.1");
    socket.on("error", () => {});
    let answer = "";
    socket.on("data", (d: Buffer) => {
      answer += d.toString("latin1");
    });
    const closed = closedBy(socket);
    socket.write(
      "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    );
    await expect(Promise.race([closed.then(() => "closed"), sleep(WITHIN_MS).then(() => "open")])).resolves.toBe(
      "closed",
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
  });

  it("keeps a quiet server stream over HTTP/1.1 open past every timeout", async () => {
    const client = createClient(Health, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const abort = new AbortController();
    const stream = client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await stream.next()).done).toBe(false);
    const ended = stream.next().then(
      () => "ended",
      () => "ended",
    );
    const outcome = await Promise.race([ended, sleep(REQUEST_MS + IDLE_MS * 3).then(() => "open")]);
    expect(outcome).toBe("open");
    abort.abort();
    await ended;
    await until(
      () => server.openConnections(),
      (n) => n <= 1,
      { ms: WITHIN_MS, what: "the stream's connection to end or go idle" },
    );
  });
});

// An unexpected exception in a request handler fails that request alone: it is
// logged once (rate-limited) with the request's context, the caller gets an
// honest INTERNAL in its protocol, and the server goes on serving.
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createHealthService } from "../../services/agent/server/health.js";
import { listenOnePort, type OnePortServer } from "../../services/agent/server/one-port.js";
import {
  createFailureReporter,
  installLastResortGuard,
  requestScope,
} from "../../services/agent/server/request-failures.js";

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

describe("a handler that throws", () => {
  let server: OnePortServer;
  const { logger, lines } = capturingLogger();

  beforeAll(async () => {
    const health = createHealthService();
    const adapter = connectNodeAdapter({ routes: health.routes });
    server = await listenOnePort({
      handler: (req, res) => {
        if (req.url?.startsWith("/boom")) throw new Error("handler bug");
        adapter(req, res);
      },
      host: "127.0.0.1",
      port: 0,
      logger,
    });
  });

  afterAll(async () => {
    await server.close({ graceMs: 2_000 });
  });

  it("answers INTERNAL, logs the failure once with context and no headers, and goes on serving", async () => {
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${server.url}/boom?i=1`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer secret-key" },
        body: "{}",
      });
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ code: "internal", message: "internal error" });
    }
    const logged = lines.filter((l) => l.msg === "unexpected error while handling a request");
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      method: "POST",
      path: "/boom?i=1",
      httpVersion: "1.1",
      contentType: "application/json",
    });
    expect(JSON.stringify(lines)).not.toContain("secret-key");
    const client = createClient(Health, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    expect((await client.check({})).status).toBeDefined();
  });

  it("a gRPC caller gets grpc-status 13 in its own protocol", async () => {
    const res = await fetch(`${server.url}/boom`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: new Uint8Array(5),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("grpc-status")).toBe("13");
  });
});

describe("the failure reporter", () => {
  it("logs each distinct failure once and at most a few lines per window", () => {
    const { logger, lines } = capturingLogger();
    const reporter = createFailureReporter(logger, { maxPerWindow: 3 });
    for (let i = 0; i < 100; i++) reporter.report(new Error("same"), { path: "/x" });
    for (let i = 0; i < 100; i++) reporter.report(new Error(`distinct ${i}`), { path: "/x" });
    expect(lines).toHaveLength(3);
  });
});

describe("the last-resort guard", () => {
  it("logs an error that escapes a request asynchronously, aborts that request, and does not exit", async () => {
    const { logger, lines } = capturingLogger();
    const exits: number[] = [];
    // vitest's own listeners would also see the error: leave only ours while this runs.
    const saved = { ex: process.listeners("uncaughtException"), rej: process.listeners("unhandledRejection") };
    process.removeAllListeners("uncaughtException");
    process.removeAllListeners("unhandledRejection");
    const remove = installLastResortGuard(logger, (code) => exits.push(code));
    let aborted = 0;
    try {
      requestScope.run(
        { context: { method: "POST", path: "/a", httpVersion: "2.0", contentType: "" }, abort: () => aborted++ },
        () => {
          setTimeout(() => {
            throw new Error("late throw");
          }, 1);
          void Promise.reject(new Error("lost rejection"));
        },
      );
      await new Promise((r) => setTimeout(r, 100));
      expect(exits).toEqual([]);
      expect(aborted).toBe(2);
      expect(lines.map((l) => l.origin).sort()).toEqual(["uncaughtException", "unhandledRejection"]);
      // Outside any request: Node's default stands (exit 1 after a fatal log).
      setTimeout(() => {
        throw new Error("not a request");
      }, 1);
      await new Promise((r) => setTimeout(r, 100));
      expect(exits).toEqual([1]);
    } finally {
      remove();
      for (const l of saved.ex) process.on("uncaughtException", l as never);
      for (const l of saved.rej) process.on("unhandledRejection", l as never);
    }
  });
});

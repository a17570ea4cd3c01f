// HTTP probes for load balancers (/healthz, /readyz) and /metrics on a port of its own.
import { execFile } from "node:child_process";
import * as net from "node:net";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { CHILD_TEST_ENV, spawnAgentd, startAgentd, type TestAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";

const get = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json().catch(() => undefined)) as Record<string, string> | undefined };
};

/** A port nothing listens on right now (the metrics listener takes it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

describe("/healthz and /readyz", () => {
  let agentd: TestAgentd;
  beforeAll(async () => {
    agentd = await startAgentd();
  });
  afterAll(async () => {
    await agentd?.close();
  });

  it("answers 200 when the process is up and the database is migrated, over HTTP/1.1 and h2c, without a key", async () => {
    expect(await get(`${agentd.url}/healthz`)).toEqual({ status: 200, body: { status: "ok" } });
    expect(await get(`${agentd.url}/readyz`)).toEqual({ status: 200, body: { status: "ready" } });
    // h2c prior knowledge, as an HTTP/2 health checker would.
    const { stdout } = await promisify(execFile)("curl", ["-sS", "--http2-prior-knowledge", `${agentd.url}/readyz`]);
    expect(JSON.parse(stdout)).toEqual({ status: "ready" });
    expect((await fetch(`${agentd.url}/readyz`, { method: "POST" })).status).toBe(405);
  });

  it("is not ready while a migration this code needs is missing, and ready again once it is applied", async () => {
    const [row] = await agentd.db.sql<{ version: string; name: string }[]>`
      DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations) RETURNING version, name`;
    try {
      expect(await get(`${agentd.url}/readyz`)).toEqual({
        status: 503,
        body: { status: "not_ready", reason: "migrations_pending" },
      });
      expect((await get(`${agentd.url}/healthz`)).status).toBe(200);
    } finally {
      await agentd.db.sql`INSERT INTO schema_migrations (version, name) VALUES (${row!.version}, ${row!.name})`;
    }
    expect((await get(`${agentd.url}/readyz`)).status).toBe(200);
  });
});

describe("readiness when the database is gone", () => {
  it("answers 503 database_unreachable, naming no address or driver message, while /healthz stays 200", async () => {
    const agentd = await startAgentd();
    try {
      await agentd.db.sql.end({ timeout: 1 });
      const ready = await get(`${agentd.url}/readyz`);
      expect(ready).toEqual({ status: 503, body: { status: "not_ready", reason: "database_unreachable" } });
      expect((await get(`${agentd.url}/healthz`)).status).toBe(200);
    } finally {
      // The pool is already ended; close() still stops the server and drops the test database.
      await agentd.close().catch(() => {});
    }
  });
});

describe("AGENTD_METRICS_PORT", () => {
  it("serves /metrics on the main port by default", async () => {
    const agentd = await startAgentd();
    try {
      const res = await fetch(`${agentd.url}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("agentd_");
    } finally {
      await agentd.close();
    }
  });

  it("moves /metrics to its own port: 404 on the main port", async () => {
    const metricsPort = await freePort();
    const agentd = await startAgentd({ config: { metricsPort } });
    try {
      expect(agentd.service.metrics?.url).toBe(`http://127.0.0.1:${metricsPort}/metrics`);
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("agentd_");
      expect((await fetch(`${agentd.url}/metrics`)).status).toBe(404);
      // Only /metrics there: no RPCs, no SSE, no probes.
      expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(404);
      expect((await get(`${agentd.url}/readyz`)).status).toBe(200);
    } finally {
      await agentd.close();
    }
    // Closed with the service.
    await expect(fetch(`http://127.0.0.1:${metricsPort}/metrics`)).rejects.toThrow();
  });
});

describe("SIGTERM (child process)", () => {
  let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
  beforeAll(async () => {
    shared = await startSharedTestDatabase();
  });
  afterAll(async () => {
    await shared?.close();
  });

  it("turns /readyz and grpc.health.v1 not-serving while the port still answers, then closes", async () => {
    const child = await spawnAgentd({
      databaseUrl: shared.url,
      env: { ...CHILD_TEST_ENV, AGENTD_SHUTDOWN_DELAY_MS: "4000" },
    });
    try {
      expect((await get(`${child.url}/readyz`)).status).toBe(200);
      const health = createClient(Health, createGrpcTransport({ baseUrl: child.url }));
      expect((await health.check({})).status).toBe(ServingStatus.SERVING);

      child.child.kill("SIGTERM");
      await expect
        .poll(async () => (await get(`${child.url}/readyz`)).body?.reason, { timeout: 10_000, interval: 50 })
        .toBe("shutting_down");
      // The listener is still open: liveness and gRPC health answer.
      expect((await get(`${child.url}/healthz`)).status).toBe(200);
      expect((await health.check({})).status).toBe(ServingStatus.NOT_SERVING);
      expect(await child.exited).toBe(0);
      await expect(fetch(`${child.url}/healthz`)).rejects.toThrow();
    } finally {
      await child.kill("SIGKILL");
    }
  });
});

// CORS on the one port, as a browser sees it (fetch with Origin): preflights and actual
// responses for Connect, gRPC-Web and SSE; an unlisted origin gets nothing; non-browser
// clients are untouched.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOriginCheck } from "../../services/agent/server/cors.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";

const PAGE = "http://127.0.0.1:5173";
let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd({ config: { corsOrigins: [PAGE, "https://app.example.com"] } });
});
afterAll(async () => {
  await agentd?.close();
});

const preflight = (path: string, origin: string, headers = "authorization, content-type, connect-protocol-version") =>
  fetch(`${agentd.url}${path}`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": headers },
  });

describe("CORS", () => {
  it("answers a preflight from an allowed origin with methods, headers and max-age", async () => {
    for (const path of ["/agentd.v1.AgentService/Run", "/agentd.v1.TaskService/WatchTask", "/v1/tasks/x/events"]) {
      const res = await preflight(path, PAGE);
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(PAGE);
      expect(res.headers.get("access-control-allow-methods")).toMatch(/POST/);
      expect(res.headers.get("access-control-allow-methods")).toMatch(/GET/);
      const allowed = res.headers.get("access-control-allow-headers")!.split(/,\s*/);
      for (const h of [
        "authorization",
        "content-type",
        "connect-protocol-version",
        "x-grpc-web",
        "x-user-agent",
        "last-event-id",
        "x-request-id",
        "grpc-timeout",
        "connect-timeout-ms",
      ]) {
        expect(allowed).toContain(h);
      }
      expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);
      expect(res.headers.get("vary")).toMatch(/origin/i);
    }
  });

  it("refuses a preflight from an unlisted origin with 403 and a short text, and no CORS headers", async () => {
    const res = await preflight("/agentd.v1.AgentService/Run", "https://evil.example");
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/origin not allowed/);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("actual Connect and gRPC-Web responses carry allow-origin and exposed headers", async () => {
    const connect = await fetch(`${agentd.url}/agentd.v1.AgentService/ListAgents`, {
      method: "POST",
      headers: { origin: PAGE, "content-type": "application/json", authorization: `Bearer ${agentd.key}` },
      body: "{}",
    });
    expect(connect.status).toBe(200);
    expect(connect.headers.get("access-control-allow-origin")).toBe(PAGE);
    const exposed = connect.headers.get("access-control-expose-headers")!.split(/,\s*/);
    for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"])
      expect(exposed).toContain(h);

    const grpcWeb = await fetch(`${agentd.url}/agentd.v1.AgentService/ListAgents`, {
      method: "POST",
      headers: {
        origin: PAGE,
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        authorization: `Bearer ${agentd.key}`,
      },
      body: new Uint8Array([0, 0, 0, 0, 0]),
    });
    expect(grpcWeb.status).toBe(200);
    expect(grpcWeb.headers.get("access-control-allow-origin")).toBe(PAGE);

    // An error (no key) is readable by the page too.
    const refused = await fetch(`${agentd.url}/agentd.v1.AgentService/ListAgents`, {
      method: "POST",
      headers: { origin: "https://app.example.com", "content-type": "application/json" },
      body: "{}",
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
  });

  it("SSE responses carry allow-origin", async () => {
    const { task } = await agentd.client.tasks.createTask({ agent: "simulate" });
    const res = await fetch(`${agentd.url}/v1/tasks/${task!.id}/events`, {
      headers: { origin: PAGE, accept: "text/event-stream", authorization: `Bearer ${agentd.key}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(PAGE);
    await res.body?.cancel();
  });

  it("an unlisted origin's actual request gets no CORS headers; a request without Origin is unchanged", async () => {
    const evil = await fetch(`${agentd.url}/agentd.v1.AgentService/ListAgents`, {
      method: "POST",
      headers: {
        origin: "http://127.0.0.1:9999",
        "content-type": "application/json",
        authorization: `Bearer ${agentd.key}`,
      },
      body: "{}",
    });
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    expect(evil.headers.get("access-control-expose-headers")).toBeNull();
    const plain = await fetch(`${agentd.url}/agentd.v1.AgentService/ListAgents`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${agentd.key}` },
      body: "{}",
    });
    expect(plain.status).toBe(200);
    expect(plain.headers.get("access-control-allow-origin")).toBeNull();
    expect(plain.headers.get("vary")).toBeNull();
  });
});

describe("CORS with no origins listed (AGENTD_CORS_ORIGINS unset, not dev)", () => {
  it("refuses every preflight with 403 and says how to allow the origin; other requests are unchanged", async () => {
    const closed = await startAgentd({ config: { corsOrigins: [] } });
    try {
      for (const path of ["/agentd.v1.AgentService/Run", "/v1/tasks/x/events"]) {
        const res = await fetch(`${closed.url}${path}`, {
          method: "OPTIONS",
          headers: {
            origin: PAGE,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
          },
        });
        expect(res.status).toBe(403);
        expect(await res.text()).toMatch(/origin not allowed: add it to AGENTD_CORS_ORIGINS/);
        expect(res.headers.get("access-control-allow-origin")).toBeNull();
      }
      const page = await fetch(`${closed.url}/agentd.v1.AgentService/ListAgents`, {
        method: "POST",
        headers: { origin: PAGE, "content-type": "application/json", authorization: `Bearer ${closed.key}` },
        body: "{}",
      });
      expect(page.status).toBe(200);
      expect(page.headers.get("access-control-allow-origin")).toBeNull();
      const plain = await fetch(`${closed.url}/agentd.v1.AgentService/ListAgents`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${closed.key}` },
        body: "{}",
      });
      expect(plain.status).toBe(200);
      expect(plain.headers.get("vary")).toBeNull();
    } finally {
      await closed.close();
    }
  });
});

describe("origin patterns", () => {
  it("matches exact origins, any port on a dev host, and * only when listed", () => {
    const dev = createOriginCheck(["http://localhost:*", "http://127.0.0.1:*", "https://app.example.com"]);
    expect(dev("http://localhost:5173")).toBe(true);
    expect(dev("http://127.0.0.1:80")).toBe(true);
    expect(dev("https://app.example.com")).toBe(true);
    expect(dev("http://localhost:80.evil.example")).toBe(false);
    expect(dev("http://localhost.evil.example:80")).toBe(false);
    expect(dev("https://localhost:5173")).toBe(false);
    expect(dev("https://app.example.com.evil")).toBe(false);
    expect(createOriginCheck(["*"])("https://anything.example")).toBe(true);
  });
});

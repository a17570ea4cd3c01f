// The agentd command as a user runs it: dev on a fresh folder, keys, migrate, bad settings.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientsFor, repoRoot, spawnAgentd, spawnAgentdDev } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { expectCode } from "../support/expect.js";

const run = promisify(execFile);
const agentd = (args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, [`${repoRoot}bin/agentd.js`, ...args], { cwd: repoRoot, env: { ...process.env, ...env } });

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
beforeAll(async () => {
  shared = await startSharedTestDatabase();
});
afterAll(async () => {
  await shared?.close();
});

describe("agentd keys", () => {
  it("creates a key that works, lists it without the secret, and revokes it", async () => {
    const env = { DATABASE_URL: shared.url };
    await agentd(["migrate"], env);
    const created = await agentd(
      ["keys", "create", "--tenant", "acme", "--scopes", "tasks:read,agents:run", "--name", "ci"],
      env,
    );
    const key = created.stdout.trim();
    expect(key).toMatch(/^agentd_/);
    const keyId = /key id ([0-9a-f-]{36})/.exec(created.stderr)?.[1];
    expect(keyId).toBeDefined();

    const listed = await agentd(["keys", "list", "--tenant", "acme"], env);
    expect(listed.stdout).toContain(keyId);
    expect(listed.stdout).not.toContain(key);
    expect(listed.stdout).toContain("active");

    const server = await spawnAgentd({ databaseUrl: shared.url });
    try {
      const client = clientsFor(server.url, key);
      await client.tasks.listTasks({});
      await expectCode(client.tasks.createTask({ agent: "simulate" }), Code.PermissionDenied);
      await agentd(["keys", "revoke", keyId!], env);
      expect((await agentd(["keys", "list"], env)).stdout).toMatch(/revoked/);
    } finally {
      await server.kill("SIGTERM");
    }
    // A server that has not cached the key refuses it at once.
    const fresh = await spawnAgentd({ databaseUrl: shared.url });
    try {
      await expectCode(clientsFor(fresh.url, key).tasks.listTasks({}), Code.Unauthenticated);
    } finally {
      await fresh.kill("SIGTERM");
    }
  });

  it("refuses unknown scopes and ids with a clear message", async () => {
    const env = { DATABASE_URL: shared.url };
    await expect(
      agentd(["keys", "create", "--tenant", "acme", "--scopes", "tasks:destroy"], env),
    ).rejects.toMatchObject({
      stderr: expect.stringContaining("unknown scope tasks:destroy"),
    });
    await expect(agentd(["keys", "revoke", "nope"], env)).rejects.toMatchObject({ code: 2 });
  });
});

describe("configuration", () => {
  it("a bad setting stops the start with a message naming it", async () => {
    await expect(agentd(["serve", "--port", "abc"])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--port / AGENTD_PORT"),
    });
    await expect(agentd(["serve"], { AGENTD_LEASE_MS: "-5" })).rejects.toMatchObject({
      stderr: expect.stringContaining("AGENTD_LEASE_MS"),
    });
  });

  it("--help documents every command's flags and the environment variables", async () => {
    const { stdout } = await agentd(["--help"]);
    expect(stdout).toContain("AGENTD_RUNNER_CONCURRENCY");
    expect(stdout).toContain("DATABASE_URL");
    for (const otel of ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"])
      expect(stdout).toContain(otel);
    const serve = await agentd(["serve", "--help"]);
    expect(serve.stdout).toContain("--concurrency");
  });
});

describe("agentd dev", () => {
  it("on first start creates tenant dev and a key saved with mode 0600, allows loopback pages (CORS), and keeps data across restarts", async () => {
    const data = await mkdtemp(join(tmpdir(), "agentd-dev-"));
    try {
      const first = await spawnAgentdDev(data);
      const url = first.url;
      const keyFile = join(data, "dev-api-key");
      const key = (await readFile(keyFile, "utf8")).trim();
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
      expect(first.output()).toContain(key);
      expect(first.output()).toContain("buf curl");
      const { task } = await clientsFor(url, key).tasks.createTask({ agent: "simulate" });
      // dev allows pages on loopback, any port (CORS), and no other origin.
      const preflight = (origin: string) =>
        fetch(`${url}/agentd.v1.TaskService/GetTask`, {
          method: "OPTIONS",
          headers: {
            origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization",
          },
        });
      for (const origin of ["http://localhost:5173", "http://127.0.0.1:8080"]) {
        const res = await preflight(origin);
        expect(res.status).toBe(204);
        expect(res.headers.get("access-control-allow-origin")).toBe(origin);
      }
      expect((await preflight("https://app.example.com")).status).toBe(403);
      await first.kill("SIGTERM");

      const second = await spawnAgentdDev(data);
      const url2 = second.url;
      expect((await readFile(keyFile, "utf8")).trim()).toBe(key);
      const { task: again } = await clientsFor(url2, key).tasks.getTask({ taskId: task!.id });
      expect(again?.id).toBe(task!.id);
      await second.kill("SIGTERM");
    } finally {
      await rm(data, { recursive: true, force: true });
    }
    // Two first starts of embedded Postgres (each may take up to spawnAgentdDev's 180 s on a
    // loaded machine): the 60 s default timed out under load while the servers were still starting.
  }, 420_000);
});

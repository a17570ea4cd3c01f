// `agentd keys …` while a server runs: through its KeyService (--url/--key), and
// on the data folder of a running embedded `agentd dev` (through that process).
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { type AgentdProcess, clientsFor, repoRoot, spawnAgentd, spawnAgentdDev } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { expectCode } from "../support/expect.js";

const run = promisify(execFile);
const agentd = (args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, [`${repoRoot}bin/agentd.js`, ...args], { cwd: repoRoot, env: { ...process.env, ...env } });

let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let db: Database;
const processes: AgentdProcess[] = [];
const folders: string[] = [];

beforeAll(async () => {
  shared = await startSharedTestDatabase();
  db = await openDatabase({ url: shared.url, dataDir: "unused", maxConnections: 1 });
  await runMigrations(db.sql);
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill("SIGTERM")));
  await db?.close();
  await shared?.close();
  await Promise.all(folders.map((f) => rm(f, { recursive: true, force: true })));
});

describe("agentd keys --url --key", () => {
  it("creates, lists and revokes keys of the calling key's tenant through a running server", {
    timeout: 180_000,
  }, async () => {
    const admin = (await createApiKey(db.sql, { tenantId: "cli", scopes: [...SCOPES] })).key;
    const server = await spawnAgentd({ databaseUrl: shared.url });
    processes.push(server);
    const remote = ["--url", server.url, "--key", admin];
    const created = await agentd([
      "keys",
      "create",
      "--scopes",
      "tasks:read",
      "--name",
      "remote",
      "--expires",
      "30d",
      ...remote,
    ]);
    const key = created.stdout.trim();
    const keyId = /key id ([0-9a-f-]{36})/.exec(created.stderr)?.[1];
    expect(key).toMatch(/^agentd_/);
    await clientsFor(server.url, key).tasks.listTasks({});

    const listed = await agentd(["keys", "list", ...remote]);
    expect(listed.stdout).toContain(keyId);
    expect(listed.stdout).toMatch(/expires 20\d\d-/);
    expect(listed.stdout).not.toContain(key);

    await agentd(["keys", "revoke", keyId!, ...remote]);
    expect((await agentd(["keys", "list", ...remote])).stdout).toMatch(new RegExp(`${keyId}.*revoked`));

    // A key without keys:manage is refused, with the server's reason.
    await expect(agentd(["keys", "list", "--url", server.url, "--key", key])).rejects.toMatchObject({
      stderr: expect.stringMatching(/refused/),
    });
    await expect(agentd(["keys", "create", "--scopes", "all", "--tenant", "x", ...remote])).rejects.toMatchObject({
      code: 2,
    });
    await expect(agentd(["keys", "create", "--scopes", "all", "--url", server.url])).rejects.toMatchObject({ code: 2 });
  });
});

describe("agentd keys on the data folder of a running agentd dev", () => {
  it("goes through the running process instead of refusing", { timeout: 240_000 }, async () => {
    const data = await mkdtemp(join(tmpdir(), "agentd-keys-"));
    folders.push(data);
    const dev = await spawnAgentdDev(data);
    processes.push(dev);
    expect((await stat(join(data, "server.json"))).mode & 0o777).toBe(0o600);
    const created = await agentd(["keys", "create", "--data", data, "--tenant", "acme", "--scopes", "tasks:read"], {
      DATABASE_URL: "",
    });
    const key = created.stdout.trim();
    expect(key).toMatch(/^agentd_/);
    await clientsFor(dev.url, key).tasks.listTasks({});
    await expectCode(clientsFor(dev.url, key).tasks.createTask({ agent: "simulate" }), Code.PermissionDenied);
    const listed = await agentd(["keys", "list", "--data", data], { DATABASE_URL: "" });
    expect(listed.stdout).toContain("acme");
    // The dev key has every scope, keys:manage included.
    const devKey = (await readFile(join(data, "dev-api-key"), "utf8")).trim();
    const remote = await agentd(["keys", "list", "--url", dev.url, "--key", devKey]);
    expect(remote.stdout).toContain("agentd dev");

    await dev.kill("SIGTERM");
    await expect(stat(join(data, "server.json"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

// The README's typed-client snippet ("From TypeScript") as a user pastes it into a file of a
// project that has installed the package: it runs against a real server and prints what it says.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, startAgentd, type TestAgentd } from "../support/agentd.js";

const run = promisify(execFile);

let server: TestAgentd;
let dir: string;
beforeAll(async () => {
  server = await startAgentd();
  dir = await mkdtemp(join(tmpdir(), "agentd-readme-ts-"));
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("README: the typed client snippet", { timeout: 120_000 }, () => {
  it("runs as written (only the server URL is this test's)", async () => {
    const readme = await readFile(join(repoRoot, "README.md"), "utf8");
    const snippet = /<!-- clients: typescript -->\n```ts\n([\s\S]*?)\n```\n/.exec(readme)?.[1];
    expect(snippet, "the README no longer has the block <!-- clients: typescript -->").toBeDefined();
    expect(snippet).toContain('baseUrl: "http://127.0.0.1:8080"');
    // A project that installed the package: node_modules/agentd-server is this checkout.
    await mkdir(join(dir, "node_modules"), { recursive: true });
    await symlink(repoRoot, join(dir, "node_modules", "agentd-server"));
    await writeFile(join(dir, "package.json"), '{ "type": "module" }\n');
    await writeFile(join(dir, "snippet.ts"), snippet!.replace("http://127.0.0.1:8080", server.url));
    const { stdout } = await run(process.execPath, ["--import", "tsx", join(dir, "snippet.ts")], {
      cwd: repoRoot,
      env: { ...process.env, AGENTD_API_KEY: server.key },
    });
    const printed = stdout.trim().split("\n");
    // The watch prints every event of the finished task from sequence 1, ending with its state change.
    expect(printed[0]).toMatch(/^1n? stateChange$/);
    expect(printed.filter((l) => /^\d+n? \w+$/.test(l)).length).toBeGreaterThan(3);
    // The bad input is decoded: code name, reason and the field violation.
    expect(stdout).toContain("invalid_argument INPUT_SCHEMA_VIOLATION");
    expect(stdout).toContain("input.steps");
  });
});

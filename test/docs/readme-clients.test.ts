// The README's "Clients" blocks as a user pastes them: the terminal client's commands (each line,
// with <task-id> and the a|b alternatives filled in) and the typed-client snippet in a file of a
// project that has installed the package, against a real server.
import { execFile, spawn } from "node:child_process";
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
  server = await startAgentd({ config: { webhookAllowHttp: true, webhookAllowCidrs: ["127.0.0.0/8"] } });
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

/** Runs one pasted line in bash, as the user's shell would, against this test's server. */
function sh(
  line: string,
  onStdout?: (text: string) => void,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", line], {
      cwd: repoRoot,
      env: {
        ...process.env,
        PATH: `${repoRoot}node_modules/.bin:${process.env.PATH}`,
        AGENTD_URL: server.url,
        AGENTD_API_KEY: server.key,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      onStdout?.(stdout);
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("README: the terminal client's commands", { timeout: 300_000 }, () => {
  it("every line works when pasted (placeholders filled in)", async () => {
    const readme = await readFile(join(repoRoot, "README.md"), "utf8");
    const block = /<!-- clients: terminal -->\n```sh\n([\s\S]*?)\n```\n/.exec(readme)?.[1];
    expect(block, "the README no longer has the block <!-- clients: terminal -->").toBeDefined();
    const lines = block!.split("\n").map((l) => l.replace(/\s+#.*$/, ""));
    const ok = async (line: string) => {
      const result = await sh(line);
      expect(result.code, `${line}\n${result.stderr}`).toBe(0);
      return result.stdout;
    };
    const ask = lines.find((l) => l.includes('"ask"'))!;
    const created = lines.find((l) => l.startsWith("npx agentd tasks create"))!;
    for (const line of lines) {
      if (line.includes("<") || line.includes("[") || line === ask) continue;
      await ok(line);
    }
    // The input request, answered from another terminal with the `tasks input` line.
    let answered: Promise<string> | undefined;
    const asked = await sh(ask, (text) => {
      const first = text.split("\n").find((l) => l.includes("TASK_STATE_INPUT_REQUIRED"));
      if (first && !answered) {
        const id = (JSON.parse(first) as { taskId: string }).taskId;
        const input = lines.find((l) => l.includes("tasks input <task-id>"))!;
        answered = ok(input.replace("<task-id>", id));
      }
    });
    await answered;
    expect(asked.code, asked.stderr).toBe(0);
    expect(asked.stdout).toContain("TASK_STATE_SUCCEEDED");

    const id = (JSON.parse(await ok(created)) as { task: { id: string } }).task.id;
    await ok(lines.find((l) => l.includes("tasks watch <task-id>"))!.replace("<task-id>", id));
    const [, verbs] = /tasks (\S+) <task-id>$/.exec(lines.find((l) => l.includes("tasks wait|"))!)!;
    for (const verb of verbs!.split("|")) await ok(`npx agentd tasks ${verb} ${id}`);
    const webhooks = lines.find((l) => l.includes("endpoints | deliveries"))!;
    expect(webhooks).toBe("npx agentd webhooks endpoints | deliveries [--state failed] | retry <delivery-id>");
    await ok("npx agentd webhooks endpoints");
    await ok("npx agentd webhooks deliveries --state failed");
  });
});

// The README tour as a user pastes it: every block marked `<!-- tour: name -->` runs, in order,
// in one bash session against a real `agentd dev` (own port, own data folder). Only the lines a
// user's machine decides are replaced: the server URL, the dev key file and the receiver's port.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentdProcess, repoRoot, spawnAgentdDev } from "../support/agentd.js";

interface Block {
  name: string;
  code: string;
}

/** The marked blocks of the README, in order. */
function tourBlocks(readme: string): Block[] {
  const blocks: Block[] = [];
  for (const m of readme.matchAll(/<!-- tour: ([\w-]+) -->\n```sh\n([\s\S]*?)\n```\n/g)) {
    blocks.push({ name: m[1]!, code: m[2]! });
  }
  return blocks;
}

/** Replaces one exact line the tour must contain, so a renamed line fails loudly. */
function replaceLine(script: string, line: string, by: string): string {
  if (!script.split("\n").includes(line)) throw new Error(`the tour no longer has the line ${line}`);
  return script
    .split("\n")
    .map((l) => (l === line ? by : l))
    .join("\n");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs a script in its own process group (so streams and receivers it leaves are ended too). */
function runBash(script: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", script], {
      cwd: repoRoot,
      detached: true,
      // What `npm run`/`npx` do: the project's bin folder (and its pinned Node) first.
      env: { ...process.env, PATH: `${repoRoot}node_modules/.bin:${process.env.PATH}`, DATABASE_URL: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n(tour killed after ${timeoutMs} ms)`;
      process.kill(-child.pid!, "SIGKILL");
    }, timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      try {
        process.kill(-child.pid!, "SIGKILL"); // anything the script left in the background
      } catch {}
      resolve({ code, stdout, stderr });
    });
  });
}

/** What each block must print, so a block that "runs" but answers an error fails. */
const EXPECT: Record<string, (string | RegExp)[]> = {
  setup: [],
  agents: ["summarize", "simulate"],
  run: ["TASK_STATE_SUCCEEDED", "summary"],
  "create-wait": ["TASK_STATE_SUCCEEDED", "job-42"],
  list: ["TASK_STATE_SUCCEEDED", '"team": "docs"'],
  events: ['"sequence": "1"', "TASK_STATE_SUCCEEDED"],
  "provide-input": ["TASK_STATE_INPUT_REQUIRED Publish the report?", 'TASK_STATE_SUCCEEDED [{"approved":true}]'],
  converse: ["TASK_STATE_RUNNING", "TASK_STATE_SUCCEEDED", '"approved":false'],
  watch: [/"delta"/, "event: delta", "event: state_change", /TASK_STATE_SUCCEEDED[\s\S]*TASK_STATE_SUCCEEDED/],
  resume: [/^id: 6$/m, "TASK_STATE_SUCCEEDED"],
  webhook: [/^receiver listening/m, /^task\.succeeded \S+ sequence \d+$/m],
  deliveries: ["DELIVERY_STATE_SUCCEEDED", "task.succeeded"],
};

describe("README tour", () => {
  let data = "";
  let dev: AgentdProcess | undefined;
  let url = "";

  beforeAll(async () => {
    data = await mkdtemp(join(tmpdir(), "agentd-tour-"));
    dev = await spawnAgentdDev(data);
    url = dev.url;
  });

  afterAll(async () => {
    await dev?.kill("SIGTERM");
    await rm(data, { recursive: true, force: true });
  });

  it("every marked block works as written, in order", { timeout: 180_000 }, async () => {
    const blocks = tourBlocks(await readFile(join(repoRoot, "README.md"), "utf8"));
    expect(blocks.map((b) => b.name)).toEqual(Object.keys(EXPECT));

    let script = "set -euo pipefail\n";
    for (const block of blocks) {
      script += `echo "@@tour-start ${block.name}@@"\n${block.code}\necho "@@tour-end ${block.name}@@"\n`;
    }
    script = replaceLine(script, "URL=http://127.0.0.1:8080", `URL=${url}`);
    script = replaceLine(script, "KEY=$(cat .agentd/dev-api-key)", `KEY=$(cat '${join(data, "dev-api-key")}')`);
    script = replaceLine(script, "HOOK_PORT=8000", `HOOK_PORT=${await freePort()}`);

    const { code, stdout, stderr } = await runBash(script, 150_000);
    const started = [...stdout.matchAll(/@@tour-start ([\w-]+)@@/g)].map((m) => m[1]);
    const ended = [...stdout.matchAll(/@@tour-end ([\w-]+)@@/g)].map((m) => m[1]);
    const failed = started.find((name) => !ended.includes(name));
    if (code !== 0 || failed) {
      throw new Error(
        `tour block "${failed ?? "?"}" failed (exit ${code}):\n${stdout.slice(-3000)}\n--- stderr:\n${stderr.slice(-3000)}`,
      );
    }
    for (const block of blocks) {
      const output = stdout.split(`@@tour-start ${block.name}@@`)[1]!.split(`@@tour-end ${block.name}@@`)[0]!;
      for (const expected of EXPECT[block.name]!) {
        const ok = typeof expected === "string" ? output.includes(expected) : expected.test(output);
        if (!ok) throw new Error(`tour block "${block.name}" printed no ${String(expected)}:\n${output.slice(-3000)}`);
      }
    }
  });
});

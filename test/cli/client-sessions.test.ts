// More of the terminal client as a user runs it: input from a file, Ctrl-C on `tasks watch`
// (detach and re-attach where it says, or cancel with --cancel-on-interrupt), tool calls and
// artifacts as one-line entries on a terminal, and the CLI and typed client with an access token.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, TaskState } from "../../client/index.js";
import { type FakeLlm, startFakeLlm, tokensOf } from "../agents/fake-llm.js";
import { repoRoot, startAgentd, type TestAgentd } from "../support/agentd.js";

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string>, onSpawn?: (child: ChildProcess) => void): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`${repoRoot}bin/agentd.js`, ...args], {
      cwd: repoRoot,
      env: { ...process.env, AGENTD_URL: "", AGENTD_API_KEY: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    onSpawn?.(child);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs a command on a pseudo-terminal (util-linux `script`), as a user at a terminal would. */
function onTerminal(args: string[], env: Record<string, string>, opts: { dropStderr?: boolean } = {}): Promise<Result> {
  const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const command = `${process.execPath} ${repoRoot}bin/agentd.js ${quoted}${opts.dropStderr ? " 2>/dev/null" : ""}`;
  return new Promise((resolve) => {
    const child = spawn("script", ["-qec", command, "/dev/null"], {
      cwd: repoRoot,
      env: { ...process.env, ...env, TERM: "xterm" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr: "" }));
  });
}

const lines = (text: string) =>
  text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown> & { sequence: string });

/** Sends SIGINT once the command has printed `events` NDJSON lines (a user pressing Ctrl-C mid-watch). */
const interruptAfter = (events: number) => (child: ChildProcess) => {
  let seen = 0;
  let sent = false;
  child.stdout!.on("data", (d: Buffer) => {
    seen += d.toString().split("\n").length - 1;
    // Once: a second Ctrl-C means "exit now" (130) whatever the first one started.
    if (seen >= events && !sent) {
      sent = true;
      child.kill("SIGINT");
    }
  });
};

describe("agentd client sessions", { timeout: 300_000 }, () => {
  let server: TestAgentd;
  let llm: FakeLlm;
  let env: Record<string, string>;
  let dir: string;
  beforeAll(async () => {
    llm = await startFakeLlm();
    server = await startAgentd({
      config: { llmBaseUrl: llm.baseUrl, llmModel: "fake-model", llmApiKey: "sk-test" },
    });
    env = { AGENTD_URL: server.url, AGENTD_API_KEY: server.key };
    dir = await mkdtemp(join(tmpdir(), "agentd-cli-"));
  });
  afterAll(async () => {
    await server?.close();
    await llm?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("run --input-file F reads the input from the file; a missing file is a usage error", async () => {
    const file = join(dir, "input.json");
    await writeFile(file, JSON.stringify({ steps: 2, step_delay_ms: 10, output: { from: "the file" } }));
    const ran = await cli(["run", "simulate", "--input-file", file], env);
    expect(ran.code).toBe(0);
    const events = lines(ran.stdout);
    const last = events.at(-1)!.stateChange as { state: string; task: { output: unknown } };
    expect(last.state).toBe("TASK_STATE_SUCCEEDED");
    expect(JSON.stringify(last.task.output)).toContain("the file");

    const missing = await cli(["run", "simulate", "--input-file", join(dir, "nope.json")], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--input-file");
  });

  it("Ctrl-C on watch detaches (exit 130) and names the re-attach command, which resumes after the last event", async () => {
    // Long enough (8 s) that a slow CLI start on a loaded machine still finds it running.
    const created = await cli(["tasks", "create", "simulate", "steps=20", "step_delay_ms=400"], env);
    const id = (lines(created.stdout)[0]!.task as { id: string }).id;
    // Given as a flag, the URL is repeated in the re-attach command (the key, a secret, is not).
    const detached = await cli(
      ["tasks", "watch", id, "--url", server.url],
      { AGENTD_API_KEY: server.key },
      interruptAfter(2),
    );
    expect(detached.code).toBe(130);
    const seen = lines(detached.stdout);
    const lastSeen = seen.at(-1)!.sequence;
    expect(detached.stderr).toContain(`detached from ${id}; it keeps running`);
    const reattach = /^ {2}agentd (tasks watch .+)$/m.exec(detached.stderr)?.[1];
    expect(reattach).toBe(`tasks watch ${id} --after ${lastSeen} --url ${server.url}`);

    // The task was not cancelled: the printed command follows it to the end, from the next event.
    const resumed = await cli(reattach!.split(" "), { AGENTD_API_KEY: server.key });
    expect(resumed.code).toBe(0);
    const rest = lines(resumed.stdout);
    expect(Number(rest[0]!.sequence)).toBe(Number(lastSeen) + 1);
    expect((rest.at(-1)!.stateChange as { state: string }).state).toBe("TASK_STATE_SUCCEEDED");
  });

  it("with --cancel-on-interrupt, Ctrl-C cancels the task and exits 1", async () => {
    const created = await cli(["tasks", "create", "simulate", "steps=20", "step_delay_ms=400"], env);
    const id = (lines(created.stdout)[0]!.task as { id: string }).id;
    const cancelled = await cli(["tasks", "watch", id, "--cancel-on-interrupt"], env, interruptAfter(2));
    expect(cancelled.code).toBe(1);
    expect(cancelled.stderr).toContain(`cancelled ${id}`);
    const got = await cli(["tasks", "get", id], env);
    expect(JSON.stringify(lines(got.stdout))).toContain("TASK_STATE_CANCELED");
  });

  it("on a terminal, tool calls and artifacts are one-line entries", async () => {
    // The model asks for the calculator once, then answers in text.
    llm.respond = (req) =>
      req.body.messages.some((m) => m.role === "tool")
        ? { kind: "stream", tokens: tokensOf("It is 42.") }
        : { kind: "stream", toolCalls: [{ id: "c1", name: "calculator", arguments: '{"expression":"6*7"}' }] };
    const chat = await onTerminal(["run", "chat", "--input", '{"messages":[{"role":"user","content":"6*7?"}]}'], env);
    expect(chat.code).toBe(0);
    expect(chat.stdout).toMatch(/⚙ tool calculator\(.*6\*7.*\)/);
    expect(chat.stdout).toContain("It is 42.");

    const text = "Rivers. The river rose overnight.\n\nBridges. The old bridge was closed to traffic by morning.";
    const analyzed = await onTerminal(["run", "analyze-document", `text=${text}`], env);
    expect(analyzed.code).toBe(0);
    expect(analyzed.stdout).toMatch(/▣ artifact report\.md \(text\/markdown, [^)]+\)/);
  });

  it("without --key it sends the dev key file of the data folder, when there is one", async () => {
    const data = join(dir, "dev-data");
    await mkdir(data, { recursive: true });
    const without = await cli(["agents", "list"], { AGENTD_URL: server.url, AGENTD_DATA_DIR: data });
    expect(without.code).toBe(3);
    expect(without.stderr).toContain("unauthenticated");
    await writeFile(join(data, "dev-api-key"), `${server.key}\n`);
    const withFile = await cli(["agents", "list", "--data", data], { AGENTD_URL: server.url });
    expect(withFile.code).toBe(0);
    expect(withFile.stdout).toContain("simulate");
  });

  it("--json on a terminal: stdout is NDJSON events only", async () => {
    const result = await onTerminal(["run", "simulate", "steps=2", "deltas=2", "--json"], env, { dropStderr: true });
    expect(result.code).toBe(0);
    const printed = result.stdout.split(/\r?\n/).filter(Boolean);
    expect(printed.length).toBeGreaterThan(3);
    for (const line of printed) expect(() => JSON.parse(line), line).not.toThrow();
    const events = printed.map((l) => JSON.parse(l) as { sequence: string });
    expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
  });

  it("--version names the version and the Node it runs on", async () => {
    const { version } = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { version: string };
    const result = await cli(["--version"], {});
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toMatch(new RegExp(`^agentd ${version.replace(/\./g, "\\.")} \\(Node v\\d+`));
  });

  it("an access token works with the CLI (--key) and the typed client, within its limits", async () => {
    const owner = createClient({ baseUrl: server.url, key: server.key });
    try {
      const mine = (await owner.tasks.createTask({ agent: "simulate" })).task!;
      const other = (await owner.tasks.createTask({ agent: "simulate" })).task!;
      const { accessToken: token } = await owner.auth.createAccessToken({ scopes: ["tasks:read"], taskIds: [mine.id] });
      expect(token).toBeTruthy();

      const waited = await cli(["tasks", "wait", mine.id, "--key", token], { AGENTD_URL: server.url });
      expect(waited.code).toBe(0);
      expect(waited.stdout).toContain("TASK_STATE_SUCCEEDED");
      const refused = await cli(["tasks", "get", other.id], { AGENTD_URL: server.url, AGENTD_API_KEY: token });
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/not_found|permission_denied/i);

      const viaToken = createClient({ baseUrl: server.url, token });
      try {
        const done = await viaToken.waitFor(mine.id, { until: "terminal" });
        expect(done.state).toBe(TaskState.SUCCEEDED);
        const sequences: bigint[] = [];
        for await (const event of viaToken.watch(mine.id)) sequences.push(event.sequence);
        expect(sequences.length).toBeGreaterThan(1);
        await expect(viaToken.tasks.createTask({ agent: "simulate" })).rejects.toMatchObject({
          codeName: "permission_denied",
        });
      } finally {
        viaToken.close();
      }
    } finally {
      owner.close();
    }
  });
});

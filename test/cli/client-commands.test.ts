// The terminal client as a user runs it: `agentd agents|run|tasks|webhooks` as a
// child process against a real server — NDJSON off a terminal, exit codes,
// decoded RPC errors, input validation, a watch that survives a server restart,
// and one run on a pseudo-terminal (script) that answers an input request.
import { type ChildProcess, spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, spawnAgentdCommand, startAgentd, type TestAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(
  args: string[],
  env: Record<string, string> = {},
  onSpawn?: (child: ChildProcess) => void,
): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`${repoRoot}bin/agentd.js`, ...args], {
      cwd: repoRoot,
      env: { ...process.env, AGENTD_URL: "", AGENTD_API_KEY: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    onSpawn?.(child);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const lines = (text: string) =>
  text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

// Each command is a fresh Node process (a few seconds on a loaded machine): generous timeouts.
describe("agentd client commands", { timeout: 300_000 }, () => {
  let server: TestAgentd;
  let env: Record<string, string>;
  beforeAll(async () => {
    server = await startAgentd({ config: { webhookAllowHttp: true, webhookAllowCidrs: ["127.0.0.0/8"] } });
    env = { AGENTD_URL: server.url, AGENTD_API_KEY: server.key };
  });
  afterAll(async () => {
    await server?.close();
  });

  it("lists agents and runs one: NDJSON events only, exit 0", async () => {
    const agents = await cli(["agents", "list"], env);
    expect(agents.code).toBe(0);
    expect((lines(agents.stdout)[0]!.agents as { name: string }[]).map((a) => a.name)).toContain("simulate");

    const run = await cli(["run", "simulate", "steps=3", "deltas=2", "output.greeting=hi"], env);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const events = lines(run.stdout);
    expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
    expect(events.some((e) => e.progress)).toBe(true);
    expect(events.some((e) => e.delta)).toBe(true);
    const last = events.at(-1)!.stateChange as { state: string; task: { output: { output: unknown } } };
    expect(last.state).toBe("TASK_STATE_SUCCEEDED");
    expect(last.task.output.output).toEqual({ greeting: "hi" });
  });

  it("exit 1 when the task fails, 2 on usage errors, 3 on RPC errors with code and reason", async () => {
    const failed = await cli(["run", "simulate", "--input", '{"steps":2,"fail_at_step":1}'], env);
    expect(failed.code, failed.stderr).toBe(1);
    expect((lines(failed.stdout).at(-1)!.stateChange as { state: string }).state).toBe("TASK_STATE_FAILED");

    expect((await cli(["run", "simulate", "--input", "{nope"], env)).code).toBe(2);
    expect((await cli(["tasks", "list", "--state", "done"], env)).stderr).toContain(
      "queued, running, input_required, succeeded, failed, canceled",
    );

    const missing = await cli(["run", "no-such-agent"], env);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain("not_found AGENT_NOT_FOUND");
    const bad = await cli(["tasks", "create", "simulate", "steps=many"], env);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain("invalid_argument");
    expect(bad.stderr).toContain("input.steps");
  });

  it("create, wait for input, answer (checked against the schema first), wait, events, delete", async () => {
    const created = await cli(
      [
        "tasks",
        "create",
        "simulate",
        "--input",
        '{"steps":1,"ask":[{"prompt":"approve?","schema":{"type":"boolean"}}]}',
      ],
      env,
    );
    expect(created.code).toBe(0);
    const id = (lines(created.stdout)[0]!.task as { id: string }).id;
    const waiting = await cli(["tasks", "wait", id, "--timeout", "30s"], env);
    expect(waiting.code).toBe(4);
    expect((lines(waiting.stdout)[0]!.task as { state: string }).state).toBe("TASK_STATE_INPUT_REQUIRED");

    const wrong = await cli(["tasks", "input", id, "--value", '"yes"'], env);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("must be boolean");
    expect((await cli(["tasks", "input", id, "--value", "true"], env)).code).toBe(0);
    const done = await cli(["tasks", "wait", id], env);
    expect(done.code).toBe(0);
    expect((lines(done.stdout)[0]!.task as { output: { answers: unknown[] } }).output.answers).toEqual([true]);

    const events = await cli(["tasks", "events", id, "--after", "2"], env);
    expect(lines(events.stdout)[0]!.sequence).toBe("3");
    expect((await cli(["tasks", "delete", id], env)).code).toBe(0);
    expect((await cli(["tasks", "get", id], env)).code).toBe(3);
  });

  it("cancel makes a following run exit 1", async () => {
    const created = await cli(["tasks", "create", "simulate", "steps=1000", "step_delay_ms=100"], env);
    const id = (lines(created.stdout)[0]!.task as { id: string }).id;
    const watching = cli(["tasks", "watch", id], env);
    expect((await cli(["tasks", "cancel", id], env)).code).toBe(0);
    const watched = await watching;
    expect(watched.code).toBe(1);
    expect((lines(watched.stdout).at(-1)!.stateChange as { state: string }).state).toBe("TASK_STATE_CANCELED");
  });

  it("webhooks: create an endpoint, list it, read the delivery log", async () => {
    const created = await cli(
      ["webhooks", "endpoints", "create", "http://127.0.0.1:9/hook", "--event-types", "task.succeeded"],
      env,
    );
    expect(created.code).toBe(0);
    expect(lines(created.stdout)[0]!.signingSecret).toMatch(/^whsec_/);
    const listed = await cli(["webhooks", "endpoints"], env);
    expect(listed.code).toBe(0);
    expect(JSON.stringify(lines(listed.stdout))).toContain("http://127.0.0.1:9/hook");
    const deliveries = await cli(["webhooks", "deliveries", "--state", "failed"], env);
    expect(deliveries.code).toBe(0);
    expect((await cli(["webhooks", "retry", "00000000-0000-0000-0000-000000000000"], env)).code).toBe(3);
  });

  it("on a terminal: progress, streamed text, a prompt whose answer is validated, pretty output", async () => {
    const command = [
      process.execPath,
      `${repoRoot}bin/agentd.js`,
      "run",
      "simulate",
      "--input",
      `'{"steps":2,"step_delay_ms":50,"deltas":3,"ask":[{"prompt":"Ship it?","schema":{"type":"boolean"}}]}'`,
    ].join(" ");
    const result = await new Promise<Result>((resolve) => {
      const child = spawn("script", ["-qec", command, "/dev/null"], {
        cwd: repoRoot,
        env: { ...process.env, ...env, TERM: "xterm" },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let answered = false;
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        // Answer once asked: first a wrong answer (refused before sending), then a right one.
        if (stdout.includes("> ") && !answered) {
          answered = true;
          child.stdin.write('"maybe"\n');
          setTimeout(() => child.stdin.write("true\n"), 2000);
        }
      });
      child.once("exit", () => child.stdin.end());
      child.once("close", (code) => resolve({ code, stdout, stderr: "" }));
    });
    expect(result.stdout).toContain("Ship it?");
    expect(result.stdout).toContain("not a valid answer");
    expect(result.stdout).toContain("d1 d2 d3");
    expect(result.stdout).toContain("succeeded");
    expect(result.stdout).toContain('"answers": [');
    expect(result.code).toBe(0);
  });
});

describe("agentd tasks watch across a server restart", { timeout: 300_000 }, () => {
  let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
  beforeAll(async () => {
    shared = await startSharedTestDatabase();
  });
  afterAll(async () => {
    await shared?.close();
  });

  it("resumes by itself: every event once, exit 0", async () => {
    const port = await freePort();
    const start = () =>
      spawnAgentdCommand("serve", {
        databaseUrl: shared.url,
        ready: "agentd is serving",
        args: ["--port", String(port)],
      });
    let server = await start();
    try {
      const key = (
        await cli(["keys", "create", "--tenant", "cli", "--scopes", "all"], { DATABASE_URL: shared.url })
      ).stdout.trim();
      const env = { AGENTD_URL: server.url, AGENTD_API_KEY: key };
      const created = await cli(["tasks", "create", "simulate", "steps=40", "step_delay_ms=500"], env);
      const id = (lines(created.stdout)[0]!.task as { id: string }).id;
      let restarted: Promise<void> | undefined;
      const watched = await cli(["tasks", "watch", id], env, (child) => {
        let seen = 0;
        child.stdout!.on("data", (d: Buffer) => {
          seen += d.toString().split("\n").length - 1;
          if (seen >= 3 && !restarted) {
            restarted = server.kill("SIGKILL").then(async () => {
              server = await start();
            });
          }
        });
      });
      await restarted;
      expect(watched.stderr).toContain("resuming after sequence");
      expect(watched.code).toBe(0);
      const events = lines(watched.stdout);
      expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
      expect((events.at(-1)!.stateChange as { state: string }).state).toBe("TASK_STATE_SUCCEEDED");
    } finally {
      await server.kill("SIGTERM");
    }
  });
});

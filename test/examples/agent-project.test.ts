// examples/agents as its README says a user runs it, in a copy outside this repository: the
// packed package installed from its tarball (`npm i ./agentd-server-0.1.0.tgz`), the project's
// own tests (`npm test`) and type check, then `npm run serve` (agentd dev --agents ./agents on
// its embedded database) with the agents run through a real client: ask-llm against a loopback
// OpenAI-compatible server (recorded tool call, delta, cancel closing the upstream request) and
// approve-email paused for a human and resumed by ProvideInput.
import { execFile, spawn } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { type FakeLlm, startFakeLlm, tokensOf } from "../agents/fake-llm.js";
import { asJson, listAllEvents, waitForState } from "../streams/support.js";
import { clientsFor, repoRoot } from "../support/agentd.js";
import { plain, value } from "../support/json.js";
import { packAgentd } from "../support/pack.js";

const run = promisify(execFile);
const LLM_KEY = "sk-example-project-0123456789";

let project: string;
let llm: FakeLlm;
let served: { url: string; key: string; child: ReturnType<typeof spawn>; output: () => string } | undefined;

/**
 * The PATH a user's shell has: this repository's node_modules/.bin (with its pinned Node 24)
 * removed, so the project's scripts run on the Node the project itself installs.
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => !dir.endsWith(join("node_modules", ".bin")))
    .join(delimiter);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: path, ...extra };
  for (const key of Object.keys(env)) if (key.startsWith("npm_") || key.startsWith("AGENTD_")) delete env[key];
  delete env.DATABASE_URL; // `npm run serve` as a user runs it: the embedded database
  delete env.NODE_OPTIONS;
  return env;
}

const npm = (args: string[], env = userEnv()) =>
  run("npm", args, { cwd: project, env, maxBuffer: 16 * 1024 * 1024, timeout: 300_000 });

/** `npm run serve -- --port 0 --data …`; resolves with the URL and the dev key it prints. */
function serve(): Promise<NonNullable<typeof served>> {
  const child = spawn("npm", ["run", "serve", "--", "--port", "0", "--data", join(project, ".agentd")], {
    cwd: project,
    env: userEnv({ LLM_BASE_URL: llm.baseUrl, LLM_MODEL: "example-model", LLM_API_KEY: LLM_KEY }),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: npm, the shell and agentd are stopped together
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    let url: string | undefined;
    let key: string | undefined;
    const timer = setTimeout(() => reject(new Error(`npm run serve did not start:\n${stdout}\n${stderr}`)), 240_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      url ??= /agentd dev is running on (\S+)/.exec(line)?.[1];
      key ??= /^\s+(agentd_\S+)$/.exec(line)?.[1];
      if (line === "Try it:" && url && key) {
        clearTimeout(timer);
        resolve({ url, key, child, output: () => stdout + stderr });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`npm run serve exited with ${code}:\n${stdout}\n${stderr}`));
    });
  });
}

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), "agentd-example-agents-"));
  const example = join(repoRoot, "examples/agents");
  for (const entry of await readdir(example)) {
    if (entry === "node_modules" || entry === "package-lock.json") continue; // its lock points at ../..
    await cp(join(example, entry), join(project, entry), { recursive: true });
  }
  const tarball = await packAgentd(project);
  // The README's install from a tarball.
  await npm(["install", "--no-audit", "--no-fund", "--prefer-offline", `./${tarball}`]);
  llm = await startFakeLlm();
}, 600_000);

afterAll(async () => {
  if (served?.child.exitCode === null) {
    process.kill(-served.child.pid!, "SIGTERM");
    await new Promise((r) => served!.child.once("exit", r));
  }
  await llm?.close();
  if (project) await rm(project, { recursive: true, force: true });
});

describe("examples/agents, installed from the packed package", { timeout: 300_000 }, () => {
  it("passes its own tests (npm test) and type check", async () => {
    const { stdout } = await npm(["test"]);
    expect(stdout).toMatch(/^[#ℹ] pass [1-9]/m);
    expect(stdout).toMatch(/^[#ℹ] fail 0$/m);
    await expect(npm(["run", "typecheck"])).resolves.toBeDefined();
  });

  it("npm run serve serves its agents on the project's own Node 24 beside the built-ins", async () => {
    served = await serve();
    const client = clientsFor(served.url, served.key);
    const names = (await client.agents.listAgents({})).agents.map((a) => a.name);
    expect(names).toEqual(expect.arrayContaining(["ask-llm", "approve-email", "summarize", "chat"]));
    expect(await readFile(join(project, ".agentd/dev-api-key"), "utf8")).toContain(served.key);
  });

  it("ask-llm asks the LLM server, records the call as a tool call and streams the answer", async () => {
    const client = clientsFor(served!.url, served!.key);
    llm.respond = (req) => ({ kind: "stream", tokens: tokensOf(`You asked: ${req.body.messages[0]!.content}`) });
    const { task } = await client.agents.run({ agent: "ask-llm", input: value({ question: "Why is the sky blue?" }) });
    expect(task?.state).toBe(TaskState.SUCCEEDED);
    expect(plain(task!.output)).toEqual({ answer: "You asked: Why is the sky blue?" });
    const seen = llm.requests.at(-1)!;
    expect(seen.body).toMatchObject({ model: "example-model" });
    expect(seen.authorization).toBe(`Bearer ${LLM_KEY}`);
    const events = asJson(await listAllEvents(client, task!.id)) as { toolCall?: unknown; delta?: { text: string } }[];
    expect(events.find((e) => e.toolCall)?.toolCall).toMatchObject({
      name: "llm",
      arguments: { model: "example-model", question: "Why is the sky blue?" },
      result: "You asked: Why is the sky blue?",
    });
    expect(events.flatMap((e) => (e.delta ? [e.delta.text] : [])).join("")).toBe("You asked: Why is the sky blue?");
  });

  it("cancelling an ask-llm task aborts its request to the LLM server", async () => {
    const client = clientsFor(served!.url, served!.key);
    llm.respond = () => ({ kind: "hang" });
    const before = llm.requests.length;
    const { task } = await client.tasks.createTask({ agent: "ask-llm", input: value({ question: "Wait for it" }) });
    const deadline = Date.now() + 30_000;
    while (llm.requests.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(llm.requests.length).toBe(before + 1);
    await client.tasks.cancelTask({ taskId: task!.id });
    const closed = await Promise.race([
      llm.requests.at(-1)!.closed.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 10_000)),
    ]);
    expect(closed).toBe(true);
    expect((await client.tasks.getTask({ taskId: task!.id })).task?.state).toBe(TaskState.CANCELED);
  });

  it("approve-email waits for a human and sends once approved", async () => {
    const client = clientsFor(served!.url, served!.key);
    const { task } = await client.tasks.createTask({
      agent: "approve-email",
      input: value({ to: "ada@example.org", topic: "the meeting" }),
    });
    const paused = await waitForState(client, task!.id, TaskState.INPUT_REQUIRED, 30_000);
    expect(paused.inputRequest?.prompt).toContain("Send this e-mail?");
    expect(paused.inputRequest?.prompt).toContain("To: ada@example.org");
    await client.tasks.provideInput({ taskId: task!.id, value: value({ approved: true }) });
    const done = await waitForState(client, task!.id, TaskState.SUCCEEDED, 30_000);
    expect(plain(done.output)).toEqual({
      sent: true,
      draft: "To: ada@example.org\nSubject: the meeting\n\nHello, a short note about the meeting.",
    });
  });

  it("never wrote the LLM API key to its output", () => {
    expect(served!.output()).not.toContain(LLM_KEY);
  });
});

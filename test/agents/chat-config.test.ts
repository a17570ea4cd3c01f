// The LLM settings of `chat` as an operator gives them — `agentd serve` flags (--llm-base-url,
// --llm-model, --llm-max-tool-rounds) and environment variables (AGENTD_LLM_*) — reach the
// agent, and the API key (AGENTD_LLM_API_KEY) goes to the LLM server and nowhere else: not in
// the process's logs (at debug level), nor in events or errors, even when the server echoes it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/agentd/v1/task_pb.js";
import { createApiKey } from "../../services/shared/auth/api-keys.js";
import { SCOPES } from "../../services/shared/auth/scopes.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { runMigrations } from "../../services/shared/db/migrate.js";
import { asJson, listAllEvents } from "../streams/support.js";
import { type AgentdProcess, clientsFor, spawnAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { plain, value } from "../support/json.js";
import { type FakeLlm, startFakeLlm } from "./fake-llm.js";

const LLM_KEY = "sk-proj-Operator0123456789abcdefXYZ";

let llm: FakeLlm;
let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
let db: Database;
let key: string;
const procs: AgentdProcess[] = [];

beforeAll(async () => {
  llm = await startFakeLlm();
  shared = await startSharedTestDatabase();
  db = await openDatabase({ url: shared.url, dataDir: "unused", maxConnections: 1 });
  await runMigrations(db.sql);
  key = (await createApiKey(db.sql, { tenantId: "t1", scopes: [...SCOPES] })).key;
});

afterAll(async () => {
  for (const p of procs) await p.kill("SIGTERM");
  await db?.close();
  await shared?.close();
  await llm?.close();
});

async function serve(opts: { env: Record<string, string>; args?: string[] }) {
  const proc = await spawnAgentd({
    databaseUrl: shared.url,
    env: { AGENTD_LOG_LEVEL: "debug", ...opts.env },
    ...(opts.args ? { args: opts.args } : {}),
  });
  procs.push(proc);
  return { proc, client: clientsFor(proc.url, key) };
}

describe("chat configured on the command line", { timeout: 120_000 }, () => {
  it("flags and AGENTD_LLM_API_KEY reach the agent; the key is in no log line, event or error", async () => {
    const { proc, client } = await serve({
      env: { AGENTD_LLM_API_KEY: LLM_KEY, AGENTD_LLM_MODEL: "overridden-by-the-flag" },
      args: ["--llm-base-url", llm.baseUrl, "--llm-model", "flag-model", "--llm-max-tool-rounds", "1"],
    });
    const chat = (await client.agents.getAgent({ name: "chat" })).agent!;
    expect(chat.available).toBe(true);

    llm.respond = () => ({ kind: "stream", tokens: ["Hello", " there."] });
    const ok = (await client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) })).task!;
    expect(ok.state).toBe(TaskState.SUCCEEDED);
    expect(plain<{ reply: string }>(ok.output).reply).toBe("Hello there.");
    expect(llm.requests.at(-1)!.body.model).toBe("flag-model"); // a flag wins over the environment
    expect(llm.requests.at(-1)!.authorization).toBe(`Bearer ${LLM_KEY}`);

    // --llm-max-tool-rounds 1: a second tool round in one turn fails the task.
    llm.respond = (_, i) => ({
      kind: "stream",
      toolCalls: [{ id: `c${i}`, name: "calculator", arguments: '{"expression":"2*3"}' }],
    });
    const looped = (await client.agents.run({ agent: "chat", input: value({ prompt: "loop" }) })).task!;
    expect(looped.error).toMatchObject({ code: "TOOL_ROUNDS_EXCEEDED", retryable: false });
    expect(looped.error?.message).toContain("more than 1 rounds");

    // The server echoes the key in its error bodies (as OpenAI's 401 does).
    const echoes: { status: number; code: string }[] = [
      { status: 401, code: "UPSTREAM_UNAUTHORIZED" },
      { status: 400, code: "UPSTREAM_ERROR" },
    ];
    const tasks = [ok, looped];
    for (const { status, code } of echoes) {
      llm.respond = () => ({ kind: "error", status, message: `Incorrect API key provided: ${LLM_KEY}` });
      const failed = (await client.agents.run({ agent: "chat", input: value({ prompt: "hi" }) })).task!;
      expect(failed.error?.code).toBe(code);
      tasks.push(failed);
    }
    for (const task of tasks) {
      const seen = JSON.stringify([asJson(await listAllEvents(client, task.id)), plain(task.output), task.error]);
      expect(seen).not.toContain(LLM_KEY);
      expect(seen).not.toContain("Operator0123");
    }
    // Logs at debug level, stdout and stderr, from start-up to here.
    // The failures were logged (with their error), so the check below looks where a key could leak.
    const failures = proc.logs.filter((l) => l.msg === "agent failed").map((l) => JSON.stringify(l));
    expect(failures.some((l) => l.includes("UPSTREAM_UNAUTHORIZED"))).toBe(true);
    expect(proc.output() + proc.errorOutput()).not.toContain("Operator0123");
  });

  it("AGENTD_LLM_BASE_URL / AGENTD_LLM_MODEL / AGENTD_LLM_MAX_TOOL_ROUNDS alone configure it; no key, no Authorization", async () => {
    const { client } = await serve({
      env: { AGENTD_LLM_BASE_URL: llm.baseUrl, AGENTD_LLM_MODEL: "env-model", AGENTD_LLM_MAX_TOOL_ROUNDS: "2" },
    });
    let round = 0;
    llm.respond = (req) =>
      req.body.messages.at(-1)!.role === "user" || round < 2
        ? { kind: "stream", toolCalls: [{ id: `c${++round}`, name: "calculator", arguments: '{"expression":"1+1"}' }] }
        : { kind: "stream", tokens: ["Two."] };
    const task = (await client.agents.run({ agent: "chat", input: value({ prompt: "1+1, twice" }) })).task!;
    // Two tool rounds are allowed by AGENTD_LLM_MAX_TOOL_ROUNDS=2 (the flag test allowed one).
    expect(task.state).toBe(TaskState.SUCCEEDED);
    expect(plain<{ reply: string }>(task.output).reply).toBe("Two.");
    expect(llm.requests.at(-1)!.body.model).toBe("env-model");
    expect(llm.requests.at(-1)!.authorization).toBeUndefined();
  });

  it("a base URL that is not http(s) stops start-up naming the setting", async () => {
    await expect(
      spawnAgentd({ databaseUrl: shared.url, args: ["--llm-base-url", "localhost:11434/v1", "--llm-model", "m"] }),
    ).rejects.toThrow(
      /--llm-base-url \/ AGENTD_LLM_BASE_URL="localhost:11434\/v1": must be an http:\/\/ or https:\/\/ URL/,
    );
  });
});

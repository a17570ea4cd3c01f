// The typed client (client/) against real servers: auth, runAndWait, waitFor,
// decoded errors, and a watch that resumes by itself across a server restart.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentdError, createClient, jsonValue, TaskState } from "../../client/index.js";
import { repoRoot, spawnAgentdCommand, startAgentd, type TestAgentd } from "../support/agentd.js";
import { startSharedTestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";

async function failure(call: Promise<unknown>): Promise<AgentdError> {
  try {
    await call;
  } catch (err) {
    return err as AgentdError;
  }
  throw new Error("expected the call to fail");
}

describe("typed client", () => {
  let server: TestAgentd;
  beforeAll(async () => {
    server = await startAgentd();
  });
  afterAll(async () => {
    await server?.close();
  });

  for (const transport of ["grpc", "connect", "connect-http1"] as const) {
    it(`runAndWait runs a task to the end over ${transport}`, async () => {
      const client = createClient({ baseUrl: server.url, key: server.key, transport });
      const task = await client.runAndWait({
        agent: "simulate",
        input: { steps: 3, step_delay_ms: 20, output: { ok: transport } },
      });
      expect(task.state).toBe(TaskState.SUCCEEDED);
      expect(task.output?.kind).toMatchObject({ case: "structValue" });
      const { agents } = await client.agents.listAgents({});
      expect(agents.map((a) => a.name)).toContain("simulate");
    });
  }

  it("decodes code, reason and field violations; a bad key is unauthenticated", async () => {
    const client = createClient({ baseUrl: server.url, key: server.key });
    const bad = await failure(client.tasks.createTask({ agent: "simulate", input: jsonValue({ steps: "many" }) }));
    expect(bad).toBeInstanceOf(AgentdError);
    expect(bad.codeName).toBe("invalid_argument");
    expect(bad.fieldViolations.map((v) => v.field)).toContain("input.steps");
    const missing = await failure(client.agents.getAgent({ name: "nope" }));
    expect(missing.codeName).toBe("not_found");
    expect(missing.reason).toBe("AGENT_NOT_FOUND");
    const stranger = createClient({ baseUrl: server.url, token: "agentd_not-a-key" });
    expect((await failure(stranger.tasks.listTasks({}))).codeName).toBe("unauthenticated");
  });

  it("waitFor stops at an input request; the answer lets the task finish", async () => {
    const client = createClient({ baseUrl: server.url, key: server.key, transport: "connect" });
    const asking = await client.runAndWait(
      { agent: "simulate", input: { steps: 1, ask: [{ prompt: "approve?", schema: { type: "boolean" } }] } },
      { until: "input_required" },
    );
    expect(asking.state).toBe(TaskState.INPUT_REQUIRED);
    expect(asking.inputRequest?.prompt).toBe("approve?");
    await client.tasks.provideInput({ taskId: asking.id, value: jsonValue(true) });
    const done = await client.waitFor(asking.id);
    expect(done.state).toBe(TaskState.SUCCEEDED);
  });

  it("watch replays from a cursor without repeating it", async () => {
    const client = createClient({ baseUrl: server.url, key: server.key });
    const task = await client.runAndWait({ agent: "simulate", input: { steps: 3 } });
    const all = [];
    for await (const e of client.watch(task.id)) all.push(e.sequence);
    const later = [];
    for await (const e of client.watch(task.id, { afterSequence: 2 })) later.push(e.sequence);
    expect(all.length).toBeGreaterThan(3);
    expect(later).toEqual(all.slice(2));
  });

  it("watch from the last event of an ended task ends at once instead of reconnecting", async () => {
    const client = createClient({ baseUrl: server.url, key: server.key });
    try {
      const task = await client.runAndWait({ agent: "simulate", input: { steps: 1 } });
      let reconnects = 0;
      const after = [];
      for await (const e of client.watch(task.id, {
        afterSequence: task.lastSequence,
        maxRetries: 2,
        onReconnect: () => void reconnects++,
      })) {
        after.push(e.sequence);
      }
      expect(after).toEqual([]);
      expect(reconnects).toBe(0);
    } finally {
      client.close();
    }
  });
});

describe("watch across a server restart", () => {
  let shared: Awaited<ReturnType<typeof startSharedTestDatabase>>;
  beforeAll(async () => {
    shared = await startSharedTestDatabase();
  });
  afterAll(async () => {
    await shared?.close();
  });

  it("resumes from the last sequence: every event once, in order, up to the terminal one", async () => {
    const port = await freePort();
    const start = () =>
      spawnAgentdCommand("serve", {
        databaseUrl: shared.url,
        ready: "agentd is serving",
        args: ["--port", String(port)],
      });
    let server = await start();
    try {
      const created = await promisify(execFile)(
        process.execPath,
        [`${repoRoot}bin/agentd.js`, "keys", "create", "--tenant", "watch", "--scopes", "all"],
        { env: { ...process.env, DATABASE_URL: shared.url } },
      );
      const client = createClient({ baseUrl: server.url, key: created.stdout.trim(), transport: "grpc" });
      const { task } = await client.tasks.createTask({
        agent: "simulate",
        input: jsonValue({ steps: 12, step_delay_ms: 250 }),
      });
      const seen: bigint[] = [];
      let reconnects = 0;
      let restarted: Promise<void> | undefined;
      for await (const event of client.watch(task!.id, {
        onReconnect: () => void reconnects++,
        initialBackoffMs: 100,
        maxBackoffMs: 1000,
      })) {
        seen.push(event.sequence);
        if (seen.length === 3 && !restarted) {
          restarted = server.kill("SIGKILL").then(async () => {
            server = await start();
          });
        }
      }
      await restarted;
      expect(reconnects).toBeGreaterThan(0);
      expect(seen).toEqual(seen.map((_, i) => BigInt(i + 1)));
      const { task: last } = await client.tasks.getTask({ taskId: task!.id });
      expect(last!.state).toBe(TaskState.SUCCEEDED);
      expect(seen.at(-1)).toBe(last!.lastSequence);
    } finally {
      await server.kill("SIGTERM");
    }
  });
});

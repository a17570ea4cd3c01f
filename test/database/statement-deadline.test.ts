// A database that accepts connections but does not answer (issue 7, part 2): here the tasks
// table is locked by another session, so every statement on it waits. Calls answer UNAVAILABLE
// within AGENTD_DB_STATEMENT_TIMEOUT_MS (not at the client's deadline), and calls succeed again as soon
// as the lock goes. Real Postgres only: the embedded
// database is one session, which the lock would hold for everyone, the test included.
import { Code, ConnectError } from "@connectrpc/connect";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { value } from "../support/json.js";

describe.skipIf(!process.env.DATABASE_URL)("a database statement that gets no answer", () => {
  let database: TestDatabase;
  let agentd: TestAgentd;
  let taskId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    agentd = await startAgentd({ database, config: { dbStatementTimeoutMs: 1000 } });
    const { task } = await agentd.client.tasks.createTask({ agent: "simulate", input: value({ steps: 1 }) });
    taskId = task!.id;
  }, 60_000);

  afterAll(async () => {
    await agentd?.close();
  });

  it("answers UNAVAILABLE within the deadline, and serves again after", {
    timeout: 60_000,
  }, async () => {
    const locker = postgres(database.url!, { max: 1, onnotice: () => {} });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const holding = locker.begin(async (tx) => {
      await tx`LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE`;
      locked();
      await released;
    });
    try {
      await isLocked;
      const calls = [
        () => agentd.client.tasks.getTask({ taskId }, { timeoutMs: 30_000 }),
        () => agentd.client.tasks.listTasks({}, { timeoutMs: 30_000 }),
        () => agentd.client.tasks.createTask({ agent: "simulate" }, { timeoutMs: 30_000 }),
        // SSE: the look-up of the task before the stream starts; 503 is its UNAVAILABLE.
        async () => {
          const res = await fetch(`${agentd.url}/v1/tasks/${taskId}/events`, {
            headers: { authorization: `Bearer ${agentd.key}` },
            signal: AbortSignal.timeout(30_000),
          });
          const body = await res.text();
          if (res.status === 503) throw new ConnectError(JSON.parse(body).message, Code.Unavailable);
          throw new Error(`SSE answered ${res.status}: ${body.slice(0, 200)}`);
        },
      ];
      const answers = await Promise.all(
        calls.map(async (call) => {
          const started = Date.now();
          const error = await call().then(
            () => undefined,
            (e: unknown) => ConnectError.from(e),
          );
          return { error, ms: Date.now() - started };
        }),
      );
      for (const { error, ms } of answers) {
        expect(error?.code, error?.message).toBe(Code.Unavailable);
        expect(error!.rawMessage).not.toMatch(/timeout|statement|ms\b|postgres/i);
        // The deadline is 1 s; the client's is 30 s. Generous for a loaded machine.
        expect(ms).toBeLessThan(15_000);
      }
    } finally {
      release();
      await holding;
      await locker.end();
    }
    const { task } = await agentd.client.tasks.getTask({ taskId }, { timeoutMs: 10_000 });
    expect(task!.id).toBe(taskId);
    await agentd.client.tasks.createTask({ agent: "simulate" }, { timeoutMs: 10_000 });
  });
});

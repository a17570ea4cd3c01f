// The runner's claim is one SQL statement that writes the state_change event
// itself; its snapshot must be the one every other change writes (stateChangeSnapshot).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentDefinition } from "../../services/agent/agents/agent.js";
import { findTask } from "../../services/agent/store/find-task.js";
import { stateChangeSnapshot } from "../../services/agent/wire/task-json.js";
import { startAgentd, type TestAgentd } from "../support/agentd.js";
import { value } from "../support/json.js";

let release: (() => void) | undefined;
const held = new Promise<void>((resolve) => (release = resolve));
const waits: AgentDefinition = {
  name: "waits",
  version: "1.0.0",
  description: "Runs until the test lets it finish.",
  inputSchema: { type: "object" },
  outputSchema: {},
  run: () => held.then(() => ({ done: true })),
};

let agentd: TestAgentd;
beforeAll(async () => {
  agentd = await startAgentd({ agents: [waits] });
});
afterAll(async () => {
  release?.();
  await agentd?.close();
});

describe("a claim", () => {
  it("writes the same RUNNING state_change the task writer would", async () => {
    const { task } = await agentd.client.tasks.createTask({
      agent: "waits",
      input: value({ big: "x".repeat(100) }),
      labels: { team: "a", "b-c": "d" },
      requestId: "claim-snapshot-1",
      timeout: { seconds: 7n, nanos: 250_000_000 },
    });
    const key = { tenantId: "t1", taskId: task!.id };
    let row = await findTask(agentd.db.sql, key);
    for (let i = 0; i < 200 && row?.state !== "RUNNING"; i++) {
      await new Promise((r) => setTimeout(r, 25));
      row = await findTask(agentd.db.sql, key);
    }
    expect(row?.state).toBe("RUNNING");
    expect(row?.attempt).toBe(1);
    expect(row?.lease_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(row!.last_sequence)).toBe(2);
    const [event] = await agentd.db.sql<{ kind: string; data: unknown; time: Date }[]>`
      SELECT kind, data, time FROM task_events WHERE tenant_id = 't1' AND task_id = ${task!.id} AND sequence = 2
    `;
    expect(event?.kind).toBe("stateChange");
    expect(event?.data).toEqual({ state: "TASK_STATE_RUNNING", task: stateChangeSnapshot(row!, 2) });
    expect(event?.time.getTime()).toBe(row!.update_time.getTime());
    release?.();
    const waited = await agentd.client.tasks.waitTask({ taskId: task!.id, timeout: { seconds: 10n } });
    expect(waited.task?.attempt).toBe(1);
  });
});

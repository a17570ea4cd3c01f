// The runner's journal of recent outcomes (issue 14): bounded by age and count,
// and re-applied only where the attempt that decided still holds the task, on
// a real database whose last commit is rolled back by hand as a failover onto
// an asynchronous standby would.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { TaskRow } from "../../services/agent/model/task.js";
import { createOutcomeJournal } from "../../services/agent/runner/outcome-journal.js";
import { findTask } from "../../services/agent/store/find-task.js";
import { createTaskWriter } from "../../services/agent/store/task-writer.js";
import { newTaskRow } from "../../services/agent/tasks/new-task.js";
import { claim, succeed } from "../../services/agent/tasks/transitions.js";
import { silentLogger } from "../../services/shared/log.js";
import { createLocalWakeupBus } from "../../services/shared/wakeup/bus.js";
import { useTestDatabase } from "../support/database.js";

const testDatabase = useTestDatabase();

const row = (taskId: string, leaseId: string | null = "lease-1") =>
  ({ tenant_id: "t1", task_id: taskId, lease_id: leaseId, attempt: 1 }) as TaskRow;
const nothing = () => null;

describe("the outcome journal", () => {
  it("keeps the outcomes of the last window, at most `limit` of them, newest last", () => {
    let now = 0;
    const journal = createOutcomeJournal({ windowMs: 1000, limit: 3, now: () => now });
    for (const id of ["a", "b", "c", "d"]) {
      journal.record(row(id), nothing);
      now += 100;
    }
    expect(journal.recent().map((e) => e.held.task_id)).toEqual(["b", "c", "d"]);
    journal.record(row("b"), nothing); // recorded again: now the newest
    expect(journal.recent().map((e) => e.held.task_id)).toEqual(["c", "d", "b"]);
    now += 950; // c (t=200) and d (t=300) are older than the window now; b (t=400) is not
    expect(journal.recent().map((e) => e.held.task_id)).toEqual(["b"]);
    journal.record(row("e", null), nothing); // no lease: nothing to fence with, not kept
    expect(journal.recent()).toHaveLength(1);
  });

  it("re-applies an outcome whose commit was lost, with the same result and event sequence, and nothing else", async () => {
    const writer = createTaskWriter({ sql: testDatabase.db.sql, bus: createLocalWakeupBus() });
    const journal = createOutcomeJournal();
    const start = async () => {
      const fresh = newTaskRow(
        "t1",
        "1.0.0",
        { agent: "simulate", input: {}, requestId: null, labels: {}, timeoutMs: 60_000, maxAttempts: 3, webhook: null },
        "",
        new Date(),
      );
      return (await writer.insert(fresh, claim("runner-1", 60_000)))!.task;
    };
    const lost = await start();
    const kept = await start();
    const movedOn = await start();
    const sequences = async (taskId: string) =>
      (
        await testDatabase.db.sql<{ sequence: number; kind: string }[]>`
        SELECT sequence, kind FROM task_events WHERE tenant_id = 't1' AND task_id = ${taskId} ORDER BY sequence
      `
      ).map((e) => `${e.sequence}:${e.kind}`);

    const ended = new Map<string, TaskRow>();
    for (const [held, output] of [
      [lost, { answer: 1 }],
      [kept, { answer: 2 }],
      [movedOn, { answer: 3 }],
    ] as const) {
      const decide = succeed(output);
      const result = await writer.changeHeld(held, decide, { leaseId: held.lease_id! });
      expect(result.status).toBe("changed");
      journal.record(held, decide);
      ended.set(held.task_id, (result as { task: TaskRow }).task);
    }
    const eventsBefore = await sequences(lost.task_id);

    // The failover: `lost` is back to RUNNING under its lease, its last event gone;
    // `movedOn` lost its outcome too, but was then swept and claimed again (another lease).
    const rewind = async (held: TaskRow, leaseId: string) => {
      await testDatabase.db.sql`
        UPDATE tasks SET state = 'RUNNING', output = NULL, end_time = NULL, last_sequence = ${held.last_sequence},
          lease_owner = ${held.lease_owner}, lease_id = ${leaseId}, lease_expires_at = now() + interval '1 minute'
        WHERE tenant_id = 't1' AND task_id = ${held.task_id}`;
      await testDatabase.db
        .sql`DELETE FROM task_events WHERE tenant_id = 't1' AND task_id = ${held.task_id} AND sequence > ${held.last_sequence}`;
    };
    await rewind(lost, lost.lease_id!);
    const anotherLease = randomUUID();
    await rewind(movedOn, anotherLease);

    expect(await journal.reapply(writer, silentLogger())).toBe(1);
    const again = (await findTask(testDatabase.db.sql, { tenantId: "t1", taskId: lost.task_id }))!;
    expect(again.state).toBe("SUCCEEDED");
    expect(again.output).toEqual({ answer: 1 });
    expect(again.end_time).toEqual(ended.get(lost.task_id)!.end_time);
    expect(await sequences(lost.task_id)).toEqual(eventsBefore);
    expect((await findTask(testDatabase.db.sql, { tenantId: "t1", taskId: kept.task_id }))!.output).toEqual({
      answer: 2,
    });
    const other = (await findTask(testDatabase.db.sql, { tenantId: "t1", taskId: movedOn.task_id }))!;
    expect(other.state).toBe("RUNNING");
    expect(other.lease_id).toBe(anotherLease);

    // Once landed, a second pass changes nothing.
    expect(await journal.reapply(writer, silentLogger())).toBe(0);
  });
});

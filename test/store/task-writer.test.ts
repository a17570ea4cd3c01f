// The task writer (DESIGN.md rule 1), one operation at a time against a real database, asserting
// the rows it leaves in `tasks` and `task_events` (graphile-worker style). Decisions here are
// written inline, so these tests pin the writer's behaviour and not the task transitions'.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTaskWriter } from "../../services/agent/store/task-writer.js";
import { type Database, openDatabase } from "../../services/shared/db/database.js";
import { createLocalWakeupBus } from "../../services/shared/wakeup/bus.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

type Writer = ReturnType<typeof createTaskWriter>;
type Row = Parameters<Writer["insert"]>[0];
type Decide = Parameters<Writer["change"]>[1];

const realPostgres = inject("agentdDatabase").mode === "postgres";

let testDb: TestDatabase;
let db: Database;
let writer: Writer;
const hints: { topic: string; id: string }[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await openDatabase(testDb.url ? { url: testDb.url, maxConnections: 4 } : { dataDir: testDb.dataDir! });
  const bus = createLocalWakeupBus();
  for (const topic of ["task", "queue"] as const) bus.subscribe(topic, (id) => hints.push({ topic, id }));
  writer = createTaskWriter({ sql: db.sql, bus });
});

afterAll(async () => {
  await db?.close();
  await testDb?.drop();
});

// Claims and sweeps pick from every task in the database: each test starts from none.
beforeEach(async () => {
  await db.sql`DELETE FROM task_events`;
  await db.sql`DELETE FROM tasks`;
  hints.length = 0;
});

function queuedRow(overrides: Partial<Row> = {}): Row {
  const now = new Date();
  return {
    tenant_id: "t1",
    task_id: randomUUID(),
    agent: "simulate",
    agent_version: "1.0.0",
    state: "QUEUED",
    input: { steps: 1 },
    output: null,
    error: null,
    progress: null,
    input_request: null,
    labels: { case: "writer" },
    artifacts: [],
    webhook: null,
    request_id: null,
    request_fingerprint: null,
    attempt: 0,
    max_attempts: 3,
    timeout_ms: 60_000,
    last_sequence: 0,
    create_time: now,
    start_time: null,
    end_time: null,
    update_time: now,
    run_after: now,
    lease_owner: null,
    lease_id: null,
    lease_expires_at: null,
    checkpoint: null,
    pending_input: null,
    input_expires_at: null,
    input_answer_ids: [],
    ...overrides,
  };
}

const keyOf = (row: Row) => ({ tenantId: row.tenant_id, taskId: row.task_id });

/** The terms of a runner's claim: `owner`'s lease for `leaseMs`. */
const claimAs = (owner: string, leaseMs = 60_000) => ({ owner, leaseMs });

/** A change that starts an attempt as a claim does: RUNNING under a fresh lease of `owner`. */
const startAs =
  (owner: string, leaseMs = 60_000): Decide =>
  (task) =>
    task.state !== "QUEUED"
      ? null
      : {
          patch: {
            state: "RUNNING",
            attempt: task.attempt + 1,
            lease_owner: owner,
            lease_id: randomUUID(),
            lease_expires_at: new Date(Date.now() + leaseMs),
          },
        };

const progress =
  (step: number): Decide =>
  () => ({ patch: { progress: { step } }, events: [{ kind: "progress", data: { step } }] });

async function storedTask(taskId: string) {
  const [row] = await db.sql<Row[]>`SELECT * FROM tasks WHERE task_id = ${taskId}`;
  return row;
}

async function storedEvents(taskId: string) {
  const rows = await db.sql<{ sequence: number; kind: string; data: Record<string, unknown> }[]>`
    SELECT sequence, kind, data FROM task_events WHERE task_id = ${taskId} ORDER BY sequence
  `;
  return rows.map((e) => ({ sequence: Number(e.sequence), kind: e.kind, state: e.data.state, data: e.data }));
}

async function insertRunning(owner = "runner-a", leaseMs = 60_000): Promise<Row> {
  const inserted = await writer.insert(queuedRow(), startAs(owner, leaseMs));
  return inserted!.task;
}

describe("insert", () => {
  it("stores the task and its first event, a state_change to QUEUED carrying a snapshot, and hints task and queue", async () => {
    const row = queuedRow();
    const result = await writer.insert(row);
    expect(result?.events.map((e) => [e.sequence, e.kind])).toEqual([[1, "stateChange"]]);

    const stored = await storedTask(row.task_id);
    expect(stored).toMatchObject({
      tenant_id: "t1",
      state: "QUEUED",
      attempt: 0,
      input: { steps: 1 },
      labels: { case: "writer" },
    });
    expect(Number(stored!.last_sequence)).toBe(1);
    const events = await storedEvents(row.task_id);
    expect(events.map((e) => [e.sequence, e.kind, e.state])).toEqual([[1, "stateChange", "TASK_STATE_QUEUED"]]);
    expect(events[0]!.data.task).toMatchObject({ id: row.task_id, state: "TASK_STATE_QUEUED" });
    await Promise.resolve(); // the local bus delivers on a microtask
    expect(hints).toEqual(
      expect.arrayContaining([
        { topic: "task", id: row.task_id },
        { topic: "queue", id: row.task_id },
      ]),
    );
  });

  it("applies `then` in the same statement: QUEUED then RUNNING, two events, one row", async () => {
    const task = await insertRunning("runner-a");
    expect(task.state).toBe("RUNNING");
    const stored = await storedTask(task.task_id);
    expect(stored).toMatchObject({ state: "RUNNING", attempt: 1, lease_owner: "runner-a", lease_id: task.lease_id });
    expect(Number(stored!.last_sequence)).toBe(2);
    expect((await storedEvents(task.task_id)).map((e) => e.state)).toEqual(["TASK_STATE_QUEUED", "TASK_STATE_RUNNING"]);
  });

  it("returns null and stores nothing for a request_id the tenant already used", async () => {
    const first = queuedRow({ request_id: "req-1", request_fingerprint: "f" });
    expect(await writer.insert(first)).not.toBeNull();
    const again = queuedRow({ request_id: "req-1", request_fingerprint: "f" });
    expect(await writer.insert(again)).toBeNull();
    expect(await storedTask(again.task_id)).toBeUndefined();
    expect(await storedEvents(again.task_id)).toEqual([]);
    // Another tenant may use the same request_id.
    expect(
      await writer.insert(queuedRow({ tenant_id: "t2", request_id: "req-1", request_fingerprint: "f" })),
    ).not.toBeNull();
  });
});

describe("change", () => {
  it("appends the decided events with gapless sequences and updates the row; a state change comes last", async () => {
    const row = queuedRow();
    await writer.insert(row);
    const result = await writer.change(keyOf(row), () => ({
      patch: { state: "CANCELED", end_time: new Date() },
      events: [{ kind: "log", data: { level: "info", message: "cancelled by test" } }],
    }));
    expect(result.status).toBe("changed");
    expect(await storedEvents(row.task_id)).toMatchObject([
      { sequence: 1, kind: "stateChange", state: "TASK_STATE_QUEUED" },
      { sequence: 2, kind: "log", data: { message: "cancelled by test" } },
      { sequence: 3, kind: "stateChange", state: "TASK_STATE_CANCELED" },
    ]);
    const stored = await storedTask(row.task_id);
    expect(stored?.state).toBe("CANCELED");
    expect(Number(stored!.last_sequence)).toBe(3);
    expect(stored?.end_time).toBeInstanceOf(Date);
  });

  it("stores nothing when the decision is null, and says missing for an unknown task", async () => {
    const row = queuedRow();
    await writer.insert(row);
    expect((await writer.change(keyOf(row), () => null)).status).toBe("unchanged");
    expect(await storedEvents(row.task_id)).toHaveLength(1);
    expect(await writer.change({ tenantId: "t1", taskId: randomUUID() }, progress(1))).toEqual({ status: "missing" });
    // Another tenant's key does not reach the task.
    expect(await writer.change({ tenantId: "t2", taskId: row.task_id }, progress(1))).toEqual({ status: "missing" });
  });

  it("a refusing decision (it throws) rolls back: nothing is stored", async () => {
    const row = queuedRow();
    await writer.insert(row);
    await expect(
      writer.change(keyOf(row), () => {
        throw new Error("refused");
      }),
    ).rejects.toThrow("refused");
    expect(await storedEvents(row.task_id)).toHaveLength(1);
  });

  it("with a fence, applies only while that lease holds on a RUNNING task", async () => {
    const task = await insertRunning();
    const held = await writer.change(keyOf(task), progress(1), { leaseId: task.lease_id! });
    expect(held.status).toBe("changed");
    const stale = await writer.change(keyOf(task), progress(2), { leaseId: randomUUID() });
    expect(stale.status).toBe("fenced");
    expect((await storedTask(task.task_id))?.progress).toEqual({ step: 1 });
    expect((await storedEvents(task.task_id)).map((e) => e.kind)).toEqual(["stateChange", "stateChange", "progress"]);
  });
});

describe("changeHeld", () => {
  it("applies the change in one statement while the holder's copy is current", async () => {
    const task = await insertRunning();
    const result = await writer.changeHeld(task, progress(1), { leaseId: task.lease_id! });
    expect(result.status).toBe("changed");
    if (result.status !== "changed") return;
    expect(Number(result.task.last_sequence)).toBe(3);
    expect((await storedEvents(task.task_id)).map((e) => [e.sequence, e.kind])).toEqual([
      [1, "stateChange"],
      [2, "stateChange"],
      [3, "progress"],
    ]);
    expect((await storedTask(task.task_id))?.progress).toEqual({ step: 1 });
  });

  it("when the task moved on since the copy was read, decides again on the stored row (no gap, no duplicate sequence)", async () => {
    const task = await insertRunning();
    await writer.change(keyOf(task), progress(1), { leaseId: task.lease_id! }); // someone else wrote sequence 3
    const result = await writer.changeHeld(task, progress(2), { leaseId: task.lease_id! }); // `task` still says 2
    expect(result.status).toBe("changed");
    expect((await storedEvents(task.task_id)).map((e) => [e.sequence, e.kind])).toEqual([
      [1, "stateChange"],
      [2, "stateChange"],
      [3, "progress"],
      [4, "progress"],
    ]);
  });

  it("is fenced once the attempt's lease is gone (requeued and claimed again): the old holder writes nothing", async () => {
    const task = await insertRunning("runner-a");
    await writer.change(keyOf(task), () => ({
      patch: { state: "QUEUED", lease_owner: null, lease_id: null, lease_expires_at: null },
    }));
    await writer.change(keyOf(task), startAs("runner-b"));
    const before = await storedEvents(task.task_id);

    const result = await writer.changeHeld(task, progress(9), { leaseId: task.lease_id! });
    expect(result.status).toBe("fenced");
    expect(await storedEvents(task.task_id)).toEqual(before);
    expect(await storedTask(task.task_id)).toMatchObject({
      state: "RUNNING",
      attempt: 2,
      lease_owner: "runner-b",
      progress: null,
    });
  });

  it("is fenced once the task left RUNNING (e.g. cancelled)", async () => {
    const task = await insertRunning();
    await writer.change(keyOf(task), () => ({
      patch: { state: "CANCELED", lease_owner: null, lease_id: null, lease_expires_at: null },
    }));
    expect((await writer.changeHeld(task, progress(1), { leaseId: task.lease_id! })).status).toBe("fenced");
    expect((await storedTask(task.task_id))?.state).toBe("CANCELED");
  });
});

describe("claim", () => {
  it("claims only QUEUED tasks that are due, oldest run_after first, up to the limit", async () => {
    const past = (s: number) => new Date(Date.now() - s * 1000);
    const old = queuedRow({ run_after: past(30) });
    const newer = queuedRow({ run_after: past(10) });
    const later = queuedRow({ run_after: new Date(Date.now() + 3_600_000) });
    for (const row of [newer, later, old]) await writer.insert(row);
    const ended = queuedRow();
    await writer.insert(ended);
    await writer.change(keyOf(ended), () => ({ patch: { state: "CANCELED" } }));

    const first = await writer.claim(1, claimAs("runner-a"));
    expect(first.map((t) => t.task_id)).toEqual([old.task_id]);
    const rest = await writer.claim(10, claimAs("runner-a"));
    expect(rest.map((t) => t.task_id)).toEqual([newer.task_id]);
    expect(await storedTask(later.task_id)).toMatchObject({ state: "QUEUED", lease_owner: null });
    expect(await storedTask(old.task_id)).toMatchObject({ state: "RUNNING", attempt: 1, lease_owner: "runner-a" });
  });

  it("concurrent claimers never get the same task: every task is claimed exactly once", async () => {
    const rows = Array.from({ length: 24 }, () => queuedRow());
    for (const row of rows) await writer.insert(row);
    const claimer = async (owner: string) => {
      const got: string[] = [];
      for (;;) {
        const claimed = await writer.claim(3, claimAs(owner));
        if (claimed.length === 0) return got;
        got.push(...claimed.map((t) => t.task_id));
      }
    };
    const results = await Promise.all(["a", "b", "c", "d"].map((owner) => claimer(`runner-${owner}`)));
    const all = results.flat();
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort()).toEqual(rows.map((r) => r.task_id).sort());
    const stored = await db.sql<{ task_id: string; lease_owner: string; attempt: number }[]>`
      SELECT task_id, lease_owner, attempt FROM tasks WHERE state = 'RUNNING'
    `;
    expect(stored).toHaveLength(rows.length);
    for (const [i, owner] of ["runner-a", "runner-b", "runner-c", "runner-d"].entries()) {
      const owned = stored.filter((s) => s.lease_owner === owner).map((s) => s.task_id);
      expect(owned.sort()).toEqual([...results[i]!].sort());
    }
    const [claims] = await db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM task_events WHERE kind = 'stateChange' AND data->>'state' = 'TASK_STATE_RUNNING'
    `;
    expect(claims?.n).toBe(rows.length);
  });

  it.runIf(realPostgres)("skips a task another transaction holds locked, instead of waiting for it", async () => {
    const locked = queuedRow({ run_after: new Date(Date.now() - 60_000) });
    const free = queuedRow();
    await writer.insert(locked);
    await writer.insert(free);
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let holding!: () => void;
    const held = new Promise<void>((resolve) => {
      holding = resolve;
    });
    const other = db.sql.begin(async (tx) => {
      await tx`SELECT 1 FROM tasks WHERE task_id = ${locked.task_id} FOR UPDATE`;
      holding();
      await released;
    });
    await held;
    try {
      const claimed = await writer.claim(10, claimAs("runner-a"));
      expect(claimed.map((t) => t.task_id)).toEqual([free.task_id]);
    } finally {
      release();
      await other;
    }
    expect((await storedTask(locked.task_id))?.state).toBe("QUEUED");
  });
});

describe("sweeps", () => {
  it("sweepExpiredLeases applies the decision to tasks whose lease expired, and to no other", async () => {
    const expired = await insertRunning("gone", 60_000);
    await writer.change(keyOf(expired), () => ({ patch: { lease_expires_at: new Date(Date.now() - 60_000) } }));
    const live = await insertRunning("alive", 60_000);
    const requeue: Decide = (task) => ({
      patch: { state: "QUEUED", lease_owner: null, lease_id: null, lease_expires_at: null },
      events: [{ kind: "log", data: { level: "warn", message: `attempt ${task.attempt} lost` } }],
    });
    const swept = await writer.sweepExpiredLeases(10, requeue);
    expect(swept.map((t) => t.task_id)).toEqual([expired.task_id]);
    expect(await storedTask(expired.task_id)).toMatchObject({ state: "QUEUED", lease_owner: null, lease_id: null });
    expect((await storedEvents(expired.task_id)).slice(-2).map((e) => [e.kind, e.state ?? e.data.message])).toEqual([
      ["log", "attempt 1 lost"],
      ["stateChange", "TASK_STATE_QUEUED"],
    ]);
    expect(await storedTask(live.task_id)).toMatchObject({ state: "RUNNING", lease_owner: "alive" });
    expect(await writer.sweepExpiredLeases(10, requeue)).toEqual([]);
  });

  it("sweepExpiredInputs applies the decision to INPUT_REQUIRED tasks whose input request expired", async () => {
    const waiting = async (expires: Date | null) => {
      const task = await insertRunning();
      await writer.change(keyOf(task), () => ({
        patch: {
          state: "INPUT_REQUIRED",
          input_request: { prompt: "?" },
          input_expires_at: expires,
          lease_owner: null,
          lease_id: null,
          lease_expires_at: null,
        },
      }));
      return task;
    };
    const expired = await waiting(new Date(Date.now() - 60_000));
    const open = await waiting(new Date(Date.now() + 3_600_000));
    const forever = await waiting(null);
    const swept = await writer.sweepExpiredInputs(10, () => ({
      patch: { state: "FAILED", input_request: null, input_expires_at: null },
    }));
    expect(swept.map((t) => t.task_id)).toEqual([expired.task_id]);
    expect((await storedTask(expired.task_id))?.state).toBe("FAILED");
    expect((await storedTask(open.task_id))?.state).toBe("INPUT_REQUIRED");
    expect((await storedTask(forever.task_id))?.state).toBe("INPUT_REQUIRED");
  });
});

describe("extendLeases", () => {
  it("moves the expiry of the leases the owner still holds on RUNNING tasks, and returns exactly those", async () => {
    const mine = await insertRunning("runner-a", 1_000);
    const theirs = await insertRunning("runner-b", 1_000);
    const ended = await insertRunning("runner-a", 1_000);
    await writer.change(keyOf(ended), () => ({ patch: { state: "SUCCEEDED" } }));
    const before = (await storedTask(mine.task_id))!.lease_expires_at!.getTime();

    const held = await writer.extendLeases(
      "runner-a",
      [mine.lease_id!, theirs.lease_id!, ended.lease_id!, randomUUID()],
      60_000,
    );
    expect([...held]).toEqual([mine.lease_id]);
    expect((await storedTask(mine.task_id))!.lease_expires_at!.getTime()).toBeGreaterThan(before + 30_000);
    expect((await storedTask(theirs.task_id))!.lease_expires_at!.getTime()).toBeLessThan(Date.now() + 30_000);
    // Lease bookkeeping changes no observable state: no event, same last_sequence.
    expect(await storedEvents(mine.task_id)).toHaveLength(2);
    expect(await writer.extendLeases("runner-a", [], 60_000)).toEqual(new Set());
  });
});

describe("remove", () => {
  it("deletes the task and all its events when allowed, and hints the task", async () => {
    const row = queuedRow();
    await writer.insert(row);
    await writer.change(keyOf(row), () => ({ patch: { state: "CANCELED" } }));
    hints.length = 0;
    expect(await writer.remove(keyOf(row), () => {})).toBe(true);
    expect(await storedTask(row.task_id)).toBeUndefined();
    expect(await storedEvents(row.task_id)).toEqual([]);
    await Promise.resolve();
    expect(hints).toContainEqual({ topic: "task", id: row.task_id });
  });

  it("keeps everything when `allowed` refuses, and returns false for an unknown task", async () => {
    const row = queuedRow();
    await writer.insert(row);
    await expect(
      writer.remove(keyOf(row), (task) => {
        throw new Error(`not while ${task.state}`);
      }),
    ).rejects.toThrow("not while QUEUED");
    expect(await storedTask(row.task_id)).toBeDefined();
    expect(await storedEvents(row.task_id)).toHaveLength(1);
    expect(await writer.remove({ tenantId: "t1", taskId: randomUUID() }, () => {})).toBe(false);
  });
});

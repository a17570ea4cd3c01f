// The waits on tasks (tasks/task-waiters.ts) that WaitTask and an attached Run use: hints end
// them, and one shared poll stands in for lost hints, against a real database. The waiters get
// a bus of their own, so a change written here reaches them only when the test says so.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskKey } from "../../services/agent/model/task.js";
import { createTaskWriter } from "../../services/agent/store/task-writer.js";
import { createTaskWaiters, type TaskWaiters } from "../../services/agent/tasks/task-waiters.js";
import { createLogger } from "../../services/shared/log.js";
import { createLocalWakeupBus, type WakeupBus } from "../../services/shared/wakeup/bus.js";
import { useTestDatabase } from "../support/database.js";
import { queuedTaskRow } from "../support/task-rows.js";

const POLL_MS = 100;
/** Far longer than any wait below should take: a wait that ends only at this time failed. */
const LONG_MS = 60_000;

const testDb = useTestDatabase();
let bus: WakeupBus;
let waiters: TaskWaiters;
let writer: ReturnType<typeof createTaskWriter>;

beforeAll(() => {
  bus = createLocalWakeupBus();
  waiters = createTaskWaiters({ sql: testDb.db.sql, bus, logger: createLogger({ level: "silent" }), pollMs: POLL_MS });
  writer = createTaskWriter({ sql: testDb.db.sql, bus: createLocalWakeupBus() });
});
afterAll(() => waiters?.close());

/** A new queued task in the database (its last_sequence is 1: its creation). */
async function newTask(): Promise<TaskKey> {
  const inserted = await writer.insert(queuedTaskRow("t1"));
  return { tenantId: "t1", taskId: inserted!.task.task_id };
}

/** An event on the task, written without a hint reaching the waiters. */
const writeQuietly = (key: TaskKey) =>
  writer.change(key, () => ({ patch: { progress: { step: 1 } }, events: [{ kind: "progress", data: { step: 1 } }] }));

/** Whether `p` settles within 20 ms: a wait that should still be on must not have. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setTimeout(r, 20));
  return done;
}

describe("a wait on a task", () => {
  it("ends at a hint for its task, not at one for another task", async () => {
    const key = await newTask();
    const wait = waiters.follow(key);
    const waiting = wait.next(1, LONG_MS);
    bus.publish("task", randomUUID());
    expect(await settled(waiting)).toBe(false);
    bus.publish("task", key.taskId);
    await waiting;
    wait.stop();
  });

  it("ends at once when a hint came between two waits, and only that once", async () => {
    const key = await newTask();
    const wait = waiters.follow(key);
    bus.publish("task", key.taskId);
    await new Promise((r) => setTimeout(r, 10)); // the hint is delivered in a microtask
    await wait.next(1, LONG_MS);
    const second = wait.next(1, LONG_MS);
    expect(await settled(second)).toBe(false);
    wait.stop();
    await second; // stopping ends a wait that is on
  });

  it("ends when the poll finds a new event the hint of which was lost", async () => {
    const key = await newTask();
    const wait = waiters.follow(key);
    const waiting = wait.next(1, LONG_MS);
    expect(await settled(waiting)).toBe(false);
    await writeQuietly(key);
    await waiting; // within a poll or two, far before LONG_MS
    wait.stop();
  });

  it("ends when the poll finds the task deleted", async () => {
    const key = await newTask();
    const wait = waiters.follow(key);
    const waiting = wait.next(1, LONG_MS);
    await testDb.db.sql`DELETE FROM tasks WHERE tenant_id = ${key.tenantId} AND task_id = ${key.taskId}`;
    await waiting;
    wait.stop();
  });

  it("does not end at a poll while its task stays at the sequence its caller read", async () => {
    const key = await newTask();
    const wait = waiters.follow(key);
    const polls = waiters.stats().polls;
    const waiting = wait.next(1, LONG_MS);
    for (let i = 0; i < 50 && waiters.stats().polls < polls + 3; i++) await new Promise((r) => setTimeout(r, POLL_MS));
    expect(waiters.stats().polls).toBeGreaterThanOrEqual(polls + 3);
    expect(await settled(waiting)).toBe(false);
    wait.stop();
    await waiting;
  });

  it("ends when its time passes or its signal fires", async () => {
    const key = await newTask();
    const wait = waiters.follow(key);
    await wait.next(1, 50);
    const abort = new AbortController();
    const waiting = wait.next(1, LONG_MS, abort.signal);
    abort.abort();
    await waiting;
    wait.stop();
    expect(waiters.stats().following).toBe(0);
  });
});

describe("the waits of a process", () => {
  it("share one poll query for all their tasks, and poll nothing while no wait is on", async () => {
    const keys = await Promise.all(Array.from({ length: 20 }, () => newTask()));
    const follows = keys.map((key) => waiters.follow(key));
    const before = waiters.stats().polls;
    // Followed but not waiting (a caller reading its task): nothing to poll.
    await new Promise((r) => setTimeout(r, 5 * POLL_MS));
    expect(waiters.stats().polls).toBe(before);

    const started = performance.now();
    const waiting = follows.map((wait) => wait.next(1, LONG_MS));
    await new Promise((r) => setTimeout(r, 10 * POLL_MS));
    const polls = waiters.stats().polls - before;
    const intervals = (performance.now() - started) / POLL_MS;
    // One query per interval for the twenty of them (before, each wait read its own task).
    expect(polls).toBeGreaterThan(0);
    expect(polls).toBeLessThanOrEqual(Math.ceil(intervals));

    await Promise.all(keys.map((key) => writeQuietly(key)));
    await Promise.all(waiting);
    for (const wait of follows) wait.stop();
    expect(waiters.stats().following).toBe(0);
  });
});

// The hub's watch as an iterator object (event-hub.ts HubWatch): its place in the tail is taken at
// the first pull and given back however it ends (return while a pull waits, return before any
// pull, the stream's signal, the hub closing), as the async generator it replaced did.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import type { TaskRow } from "../../services/agent/model/task.js";
import { createEventHub, type EventHub } from "../../services/agent/streams/event-hub.js";
import type { Sql } from "../../services/shared/db/database.js";
import { silentLogger } from "../../services/shared/log.js";
import type { WakeupBus } from "../../services/shared/wakeup/bus.js";

// No database: the tail's first read fails (and is retried by the next hint), so nothing moves.
const sql = (() => Promise.reject(new Error("no database"))) as unknown as Sql;
const bus = { subscribe: () => () => {} } as unknown as WakeupBus;
const task = { tenant_id: "t1", task_id: "task-1", state: "RUNNING", last_sequence: "0" } as unknown as TaskRow;

let hub: EventHub;
function newHub(): EventHub {
  hub = createEventHub({ sql, bus, logger: silentLogger(), pollMs: 60_000, keepAliveMs: 60_000, windowEvents: 16 });
  return hub;
}
afterEach(async () => {
  await hub?.close();
});

describe("a hub watch", () => {
  it("says it is established with a keep-alive, then waits; return() ends the waiting pull and frees the tail", async () => {
    const watch = newHub().watch(task, 0, new AbortController().signal);
    expect(hub.stats().watchers).toBe(0);
    const first = await watch.next();
    expect(first.done).toBe(false);
    expect(first.value?.keepAlive).toBeInstanceOf(Date);
    expect(hub.stats()).toMatchObject({ watchers: 1, tails: 1 });
    const waiting = watch.next();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await expect(watch.return()).resolves.toEqual({ done: true, value: undefined });
    await expect(waiting).resolves.toEqual({ done: true, value: undefined });
    expect(hub.stats()).toMatchObject({ watchers: 0, tails: 0 });
    await expect(watch.next()).resolves.toEqual({ done: true, value: undefined });
  });

  it("returned before its first pull, it never takes a place", async () => {
    const watch = newHub().watch(task, 0, new AbortController().signal);
    await watch.return();
    await expect(watch.next()).resolves.toEqual({ done: true, value: undefined });
    expect(hub.stats()).toMatchObject({ watchers: 0, tails: 0 });
  });

  it("ends quietly when its signal fires while it waits", async () => {
    const stop = new AbortController();
    const watch = newHub().watch(task, 0, stop.signal);
    await watch.next();
    const waiting = watch.next();
    stop.abort();
    await expect(waiting).resolves.toEqual({ done: true, value: undefined });
    expect(hub.stats().watchers).toBe(0);
  });

  it("fails UNAVAILABLE with its cursor when the hub closes", async () => {
    const watch = newHub().watch({ ...task, last_sequence: "7" } as TaskRow, 7, new AbortController().signal);
    await watch.next();
    const waiting = watch.next();
    await hub.close();
    const error = await waiting.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    expect((error as ConnectError).rawMessage).toContain("after_sequence=7");
    expect(hub.stats().watchers).toBe(0);
  });
});

// The per-process event hub (DESIGN.md rule 2): every stream of a task's events
// — WatchTask, RunStream, Converse, SSE — reads through here.
//
// - One shared tail per watched task: a read of `task_events` after the newest
//   sequence seen, started by a wake-up hint for the task (bus topic "task") or,
//   when hints are lost, by a batched poll of the watched tasks' `last_sequence`
//   every `pollMs` (≤ 2 s, rule 3). One read per new batch of events, however
//   many watchers the task has.
// - The tail keeps a bounded window of the newest events (by count, by bytes,
//   and by its share of a hub-wide byte budget). Each watcher has its own
//   cursor: it takes events from the window when the window still holds the next
//   one, and reads the log itself, a page at a time, when it has fallen behind (a
//   reconnect far back, or a slow reader); watchers behind at the same point share
//   each page while it is being read. Nothing is ever queued per watcher, so a
//   slow reader costs the server at most one page, never an unbounded buffer: its
//   stream is pulled only as fast as the client drains it, and the log is there
//   to be read again.
// - Exactly once, in order: per task, sequences are gapless and assigned under the
//   task's row lock, and a transaction that writes sequence n+1 starts only after
//   the one that wrote n has committed. So `sequence > cursor` never skips a row
//   that commits later (unlike a global sequence; rule 4), and a watcher that
//   yields strictly cursor+1, cursor+2, … and resumes from the last one it sent
//   delivers every event once.
// - A watch ends after the terminal state_change (or at once when the task has
//   ended and the cursor is at or past its last event). While nothing happens it
//   yields a keep-alive every `keepAliveMs`, and one right away when a stream
//   opens with nothing to replay, so the client knows it is established.
import { Code, type ConnectError } from "@connectrpc/connect";
import type { Sql } from "../../shared/db/database.js";
import { notFound, rpcError } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import type { StoredEvent } from "../model/change.js";
import { isTerminal, type TaskKey, type TaskRow } from "../model/task.js";
import { listEvents } from "../store/list-events.js";
import { isTerminalEvent } from "../wire/event-forms.js";
import {
  acquire,
  type Hub,
  notify,
  poll,
  READ_PAGE,
  refresh,
  release,
  type Tail,
  type TaskSeed,
  type Waiter,
} from "./hub-tails.js";
import type { StreamMetrics } from "./stream-metrics.js";

export type WatchItem = { event: StoredEvent; keepAlive?: undefined } | { event?: undefined; keepAlive: Date };

export interface HubStats {
  /** Tasks with at least one watcher. */
  tails: number;
  watchers: number;
  /** Shared reads of the log (one per new batch of a watched task). */
  tailReads: number;
  /** Reads by single watchers that were behind the window. */
  catchUpReads: number;
  polls: number;
}

export interface EventHub {
  /**
   * The task's events with sequence > `afterSequence`, then live ones, ending after the
   * terminal event; keep-alives in between. `task` is the row the caller just read (it
   * proves the task exists for the caller's tenant and seeds the shared tail). Ends quietly
   * when `signal` fires; throws UNAVAILABLE when the hub closes (shutdown) and NOT_FOUND
   * when the task is deleted meanwhile.
   */
  watch(task: TaskRow, afterSequence: number, signal: AbortSignal): AsyncGenerator<WatchItem, void>;
  start(): void;
  /** Ends every watch (with UNAVAILABLE, so clients reconnect elsewhere) and stops polling. */
  close(): Promise<void>;
  stats(): HubStats;
}

export interface EventHubOptions {
  sql: Sql;
  bus: WakeupBus;
  logger: Logger;
  metrics?: StreamMetrics;
  pollMs: number;
  keepAliveMs: number;
  /** Most events a tail keeps. */
  windowEvents: number;
  /** Most bytes (JSON of event data) a tail keeps beyond its newest event. Default 4 MiB. */
  windowBytes?: number;
  /** Bytes all tails together should keep: with many watched tasks each tail gets its share of
   * this (but never less than its newest event). Default 256 MiB. */
  totalWindowBytes?: number;
}

export function createEventHub(opts: EventHubOptions): EventHub {
  const hub: Hub = {
    opts,
    limits: {
      events: opts.windowEvents,
      bytes: opts.windowBytes ?? 4 * 1024 * 1024,
      totalBytes: opts.totalWindowBytes ?? 256 * 1024 * 1024,
    },
    tails: new Map(),
    byTask: new Map(),
    catchUps: new Map(),
    counts: { watchers: 0, tailReads: 0, catchUpReads: 0, polls: 0 },
    closed: false,
  };
  const keepAliveTickMs = Math.max(5, Math.min(1000, Math.floor(opts.keepAliveMs / 4)));
  let pollTimer: NodeJS.Timeout | undefined;
  let keepAliveTimer: NodeJS.Timeout | undefined;
  let polling: Promise<void> | undefined;
  let unsubscribe: (() => void) | undefined;

  function schedulePoll(): void {
    if (hub.closed) return;
    pollTimer = setTimeout(() => {
      polling = poll(hub)
        .catch((error: unknown) => opts.logger.warn({ err: error }, "polling watched tasks failed; will retry"))
        .finally(() => {
          polling = undefined;
          schedulePoll();
        });
    }, opts.pollMs);
    pollTimer.unref();
  }

  return {
    // Only what the watch needs of the row: a suspended watch keeps its arguments for as long
    // as the stream is open, and a whole task row (input, dates, …) is most of an idle stream's own memory.
    watch: (task, afterSequence, signal) =>
      watch(
        hub,
        { tenant_id: task.tenant_id, task_id: task.task_id, state: task.state, last_sequence: task.last_sequence },
        afterSequence,
        signal,
      ),
    start() {
      if (unsubscribe || hub.closed) return;
      unsubscribe = opts.bus.subscribe("task", (taskId) => {
        const watched = hub.byTask.get(taskId);
        if (watched) for (const tail of watched) void refresh(hub, tail);
      });
      schedulePoll();
      keepAliveTimer = setInterval(() => keepAliveTick(hub), keepAliveTickMs);
      keepAliveTimer.unref();
    },
    async close() {
      if (hub.closed) return;
      hub.closed = true;
      unsubscribe?.();
      clearTimeout(pollTimer);
      clearInterval(keepAliveTimer);
      for (const tail of hub.tails.values()) notify(tail);
      await polling;
    },
    stats: () => ({ tails: hub.tails.size, ...hub.counts }),
  };
}

async function* watch(
  hub: Hub,
  task: TaskSeed,
  afterSequence: number,
  signal: AbortSignal,
): AsyncGenerator<WatchItem, void> {
  if (hub.closed) throw shuttingDown(afterSequence);
  // Ended, and the caller has seen everything: nothing will ever come.
  if (isTerminal(task.state) && afterSequence >= Number(task.last_sequence)) return;
  const tail = acquire(hub, task);
  const key = tail.key;
  let cursor = afterSequence;
  // A stream with nothing to replay says it is established with a keep-alive at once;
  // one with events to replay (the tail may still be reading them) waits for them.
  const waiter = new Watcher(tail, cursor >= Number(task.last_sequence) ? 0 : Date.now());
  signal.addEventListener("abort", waiter.onAbort, { once: true });
  try {
    for (;;) {
      if (signal.aborted) return;
      if (hub.closed) throw shuttingDown(cursor);
      let batch = tail.window.after(cursor, READ_PAGE);
      if (batch === undefined) {
        // Behind the window: read the log at this watcher's own pace.
        batch = await catchUp(hub, key, cursor);
        if (batch.length === 0) throw notFound("task", key.taskId); // the log is gone: deleted
      }
      if (batch.length > 0) {
        for (const event of batch) {
          if (event.sequence !== cursor + 1) break; // never a gap or a repeat; the next round re-reads
          yield { event };
          cursor = event.sequence;
          waiter.lastSent = Date.now();
          if (isTerminalEvent(event)) return;
          if (signal.aborted || hub.closed) break;
        }
        continue;
      }
      if (tail.gone) throw notFound("task", key.taskId);
      const terminalSeq = tail.window.terminalSeq;
      if (terminalSeq !== null && cursor >= terminalSeq) return;
      if (Date.now() - waiter.lastSent >= hub.opts.keepAliveMs) {
        yield { keepAlive: new Date() };
        waiter.lastSent = Date.now();
        continue;
      }
      await waiter.wait();
    }
  } finally {
    signal.removeEventListener("abort", waiter.onAbort);
    tail.waiters.delete(waiter);
    release(hub, tail);
  }
}

function shuttingDown(cursor: number): ConnectError {
  return rpcError(
    Code.Unavailable,
    "SHUTTING_DOWN",
    `the server is shutting down; reconnect (to any replica) with after_sequence=${cursor} to continue without gaps`,
    { metadata: { after_sequence: String(cursor) } },
  );
}

/** One watch's waiter, woken when its tail moves, its stream ends, or a keep-alive is due. A class
 * (its `wake` on the prototype), not closures: an idle stream keeps it for its whole life, and a
 * named closure (esbuild's keepNames gives it a name property) cost more than the rest of it. */
class Watcher implements Waiter {
  /** Settles the pending `wait`; undefined while not waiting. */
  private resolve: (() => void) | undefined = undefined;

  constructor(
    private readonly tail: Tail,
    public lastSent: number,
  ) {}

  wake(): void {
    const resolve = this.resolve;
    if (resolve === undefined) return;
    this.resolve = undefined;
    this.tail.waiters.delete(this);
    resolve();
  }

  /** The stream's signal aborted: a bound function, as an object listener (handleEvent) gets an
   * async closure per listener from Node's EventTarget, and a named closure a name property. */
  readonly onAbort: () => void = this.wake.bind(this);

  /** Resolves when the tail moves, or when the waiter is woken otherwise (abort, keep-alive, close).
   * No timer per wait: with thousands of watchers, one keep-alive tick for all is far cheaper. */
  wait(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.resolve = resolve;
      this.tail.waiters.add(this);
    });
  }
}

/** Wakes the waiters that owe their client a keep-alive. Runs every `keepAliveTickMs`, so a
 * keep-alive goes out between `keepAliveMs` and `keepAliveMs + keepAliveTickMs` after the last message. */
function keepAliveTick(hub: Hub): void {
  const due = Date.now() - hub.opts.keepAliveMs;
  for (const tail of hub.tails.values()) {
    for (const waiter of tail.waiters) if (waiter.lastSent <= due) waiter.wake();
  }
}

function catchUp(hub: Hub, key: TaskKey, after: number): Promise<StoredEvent[]> {
  const flightKey = `${key.tenantId}/${key.taskId}/${after}`;
  let read = hub.catchUps.get(flightKey);
  if (!read) {
    hub.counts.catchUpReads++;
    hub.opts.metrics?.logReads.inc({ reader: "catch_up" });
    read = listEvents(hub.opts.sql, key, after, READ_PAGE).finally(() => hub.catchUps.delete(flightKey));
    hub.catchUps.set(flightKey, read);
  }
  return read;
}

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
import { listEvents } from "../store/list-events.js";
import { isTerminal, type TaskKey, type TaskRow } from "../model/task.js";
import type { StoredEvent } from "../model/change.js";
import { eventDataJson, isTerminalEvent } from "../wire/event-forms.js";
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

/** Events per read: the tail's and a catching-up watcher's. Small pages keep a slow
 * watcher's footprint small; a busy task simply takes several. */
const READ_PAGE = 64;
/** Watched tasks per poll query. */
const POLL_CHUNK = 500;

interface Tail {
  key: TaskKey;
  mapKey: string;
  /** Events (lastSeq − window.length, lastSeq], in order, no gaps. */
  window: StoredEvent[];
  windowBytes: number;
  /** The newest sequence the tail has read (or, before its first read, knows is committed). */
  lastSeq: number;
  /** Sequence of the terminal state_change, once read. */
  terminalSeq: number | null;
  /** The task was deleted. */
  gone: boolean;
  watchers: number;
  reading: boolean;
  again: boolean;
  lastRead: number;
  /** Watchers waiting for the tail to move. */
  waiters: Set<Waiter>;
}

/** A watcher while it waits: woken when its tail moves, its stream ends, or a keep-alive is due. */
interface Waiter {
  wake: (() => void) | undefined;
  /** When the watcher last sent something. */
  lastSent: number;
}

function shuttingDown(cursor: number): ConnectError {
  return rpcError(
    Code.Unavailable,
    "SHUTTING_DOWN",
    `the server is shutting down; reconnect (to any replica) with after_sequence=${cursor} to continue without gaps`,
    { metadata: { after_sequence: String(cursor) } },
  );
}

export function createEventHub(opts: EventHubOptions): EventHub {
  const { sql, bus, logger, metrics } = opts;
  const windowBytes = opts.windowBytes ?? 4 * 1024 * 1024;
  const totalWindowBytes = opts.totalWindowBytes ?? 256 * 1024 * 1024;
  /** Catch-up reads in flight, by task and cursor: watchers that fell behind together (a burst of
   * reconnects from the same point) share each page instead of each reading it. Only reads in
   * flight are shared; nothing is kept after. */
  const catchUps = new Map<string, Promise<StoredEvent[]>>();
  const tails = new Map<string, Tail>();
  /** Hints carry only the task id. */
  const byTask = new Map<string, Set<Tail>>();
  let watchers = 0;
  let tailReads = 0;
  let catchUpReads = 0;
  let polls = 0;
  let closed = false;
  let pollTimer: NodeJS.Timeout | undefined;
  let keepAliveTimer: NodeJS.Timeout | undefined;
  const keepAliveTickMs = Math.max(5, Math.min(1000, Math.floor(opts.keepAliveMs / 4)));
  let polling: Promise<void> | undefined;
  let unsubscribe: (() => void) | undefined;

  const mapKeyOf = (key: TaskKey) => `${key.tenantId}/${key.taskId}`;

  function notify(tail: Tail): void {
    const waiters = [...tail.waiters];
    tail.waiters.clear();
    for (const waiter of waiters) waiter.wake?.();
  }

  function append(tail: Tail, events: StoredEvent[]): void {
    for (const event of events) {
      if (event.sequence <= tail.lastSeq) continue;
      if (event.sequence !== tail.lastSeq + 1) {
        // Cannot happen with a gapless log; if it did, start the window afresh so
        // that no watcher takes a gap from it (they read the log instead).
        tail.window = [];
        tail.windowBytes = 0;
      }
      const bytes = eventDataJson(event).length;
      tail.window.push(event);
      tail.windowBytes += bytes;
      tail.lastSeq = event.sequence;
      if (isTerminalEvent(event)) tail.terminalSeq = event.sequence;
    }
    // Keep the newest event whatever its size, or a task of huge events would send
    // every watcher to the log.
    const maxBytes = Math.min(windowBytes, totalWindowBytes / Math.max(1, tails.size));
    while (tail.window.length > 1 && (tail.window.length > opts.windowEvents || tail.windowBytes > maxBytes)) {
      const dropped = tail.window.shift()!;
      tail.windowBytes -= eventDataJson(dropped).length;
    }
  }

  /** Reads what is new for a tail; one read at a time per tail, a hint meanwhile means one more. */
  async function refresh(tail: Tail): Promise<void> {
    if (tail.reading) {
      tail.again = true;
      return;
    }
    tail.reading = true;
    try {
      do {
        tail.again = false;
        const events = await listEvents(sql, tail.key, tail.lastSeq, READ_PAGE);
        tailReads++;
        metrics?.logReads.inc({ reader: "tail" });
        tail.lastRead = Date.now();
        if (events.length > 0) {
          append(tail, events);
          notify(tail);
        }
        if (events.length === READ_PAGE) tail.again = true;
      } while (tail.again && tail.watchers > 0 && !closed);
    } catch (error) {
      // Watchers keep waiting; the next hint or poll reads again.
      logger.warn({ err: error, taskId: tail.key.taskId }, "could not read a watched task's events; will retry");
    } finally {
      tail.reading = false;
    }
  }

  /** The fallback for lost hints: one query for every watched task not read lately. */
  async function poll(): Promise<void> {
    const now = Date.now();
    const due = [...tails.values()].filter((t) => !t.reading && now - t.lastRead >= opts.pollMs);
    for (let i = 0; i < due.length && !closed; i += POLL_CHUNK) {
      const chunk = due.slice(i, i + POLL_CHUNK);
      const rows = await sql<{ tenant_id: string; task_id: string; last_sequence: number }[]>`
        SELECT t.tenant_id, t.task_id, t.last_sequence FROM tasks t
        JOIN unnest(${chunk.map((c) => c.key.tenantId)}::text[], ${chunk.map((c) => c.key.taskId)}::uuid[]) AS w(tenant_id, task_id)
          ON t.tenant_id = w.tenant_id AND t.task_id = w.task_id
      `;
      polls++;
      metrics?.polls.inc();
      const newest = new Map(rows.map((r) => [mapKeyOf({ tenantId: r.tenant_id, taskId: r.task_id }), Number(r.last_sequence)]));
      for (const tail of chunk) {
        const last = newest.get(tail.mapKey);
        if (last === undefined) {
          tail.gone = true;
          notify(tail);
        } else if (last > tail.lastSeq) {
          void refresh(tail);
        } else {
          tail.lastRead = Date.now();
        }
      }
    }
  }

  function schedulePoll(): void {
    if (closed) return;
    pollTimer = setTimeout(() => {
      polling = poll()
        .catch((error: unknown) => logger.warn({ err: error }, "polling watched tasks failed; will retry"))
        .finally(() => {
          polling = undefined;
          schedulePoll();
        });
    }, opts.pollMs);
    pollTimer.unref();
  }

  function acquire(task: TaskRow): Tail {
    const key = { tenantId: task.tenant_id, taskId: task.task_id };
    const mapKey = mapKeyOf(key);
    let tail = tails.get(mapKey);
    const known = Number(task.last_sequence);
    if (!tail) {
      // Seed the window with the newest events, so that watchers starting near the
      // beginning of a young task (the common case) all read from it.
      const seed = Math.max(0, known - Math.min(opts.windowEvents, READ_PAGE));
      tail = {
        key,
        mapKey,
        window: [],
        windowBytes: 0,
        lastSeq: seed,
        terminalSeq: null,
        gone: false,
        watchers: 0,
        reading: false,
        again: false,
        lastRead: Date.now(),
        waiters: new Set(),
      };
      tails.set(mapKey, tail);
      const siblings = byTask.get(key.taskId) ?? new Set<Tail>();
      siblings.add(tail);
      byTask.set(key.taskId, siblings);
      metrics?.watchedTasks.set(tails.size);
      void refresh(tail);
    } else if (known > tail.lastSeq) {
      // This caller saw a newer projection than the tail has read: its hint is on the way, or lost.
      void refresh(tail);
    }
    tail.watchers++;
    watchers++;
    return tail;
  }

  function release(tail: Tail): void {
    tail.watchers--;
    watchers--;
    if (tail.watchers === 0 && tails.get(tail.mapKey) === tail) {
      tails.delete(tail.mapKey);
      const siblings = byTask.get(tail.key.taskId);
      siblings?.delete(tail);
      if (siblings?.size === 0) byTask.delete(tail.key.taskId);
      metrics?.watchedTasks.set(tails.size);
    }
  }

  /** Resolves when the tail moves, or when the waiter is woken otherwise (abort, keep-alive, close).
   * No timer per wait: with thousands of watchers, one keep-alive tick for all is far cheaper. */
  function waitFor(tail: Tail, waiter: Waiter): Promise<void> {
    return new Promise<void>((resolve) => {
      waiter.wake = () => {
        waiter.wake = undefined;
        tail.waiters.delete(waiter);
        resolve();
      };
      tail.waiters.add(waiter);
    });
  }

  /** Wakes the waiters that owe their client a keep-alive. Runs every `keepAliveTickMs`, so a
   * keep-alive goes out between `keepAliveMs` and `keepAliveMs + keepAliveTickMs` after the last message. */
  function keepAliveTick(): void {
    const due = Date.now() - opts.keepAliveMs;
    for (const tail of tails.values()) {
      for (const waiter of tail.waiters) if (waiter.lastSent <= due) waiter.wake?.();
    }
  }

  function catchUp(key: TaskKey, after: number): Promise<StoredEvent[]> {
    const flightKey = `${key.tenantId}/${key.taskId}/${after}`;
    let read = catchUps.get(flightKey);
    if (!read) {
      catchUpReads++;
      metrics?.logReads.inc({ reader: "catch_up" });
      read = listEvents(sql, key, after, READ_PAGE).finally(() => catchUps.delete(flightKey));
      catchUps.set(flightKey, read);
    }
    return read;
  }

  async function* watch(task: TaskRow, afterSequence: number, signal: AbortSignal): AsyncGenerator<WatchItem, void> {
    if (closed) throw shuttingDown(afterSequence);
    // Ended, and the caller has seen everything: nothing will ever come.
    if (isTerminal(task.state) && afterSequence >= Number(task.last_sequence)) return;
    const tail = acquire(task);
    const key = tail.key;
    let cursor = afterSequence;
    // A stream with nothing to replay says it is established with a keep-alive at once;
    // one with events to replay (the tail may still be reading them) waits for them.
    const waiter: Waiter = { wake: undefined, lastSent: cursor >= Number(task.last_sequence) ? 0 : Date.now() };
    const onAbort = () => waiter.wake?.();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        if (signal.aborted) return;
        if (closed) throw shuttingDown(cursor);
        let batch: StoredEvent[] = [];
        if (cursor < tail.lastSeq) {
          const start = tail.lastSeq - tail.window.length;
          if (cursor >= start) {
            batch = tail.window.slice(cursor - start, cursor - start + READ_PAGE);
          } else {
            // Behind the window: read the log at this watcher's own pace.
            batch = await catchUp(key, cursor);
            if (batch.length === 0) throw notFound("task", key.taskId); // the log is gone: deleted
          }
        }
        if (batch.length > 0) {
          for (const event of batch) {
            if (event.sequence !== cursor + 1) break; // never a gap or a repeat; the next round re-reads
            yield { event };
            cursor = event.sequence;
            waiter.lastSent = Date.now();
            if (isTerminalEvent(event)) return;
            if (signal.aborted || closed) break;
          }
          continue;
        }
        if (tail.gone) throw notFound("task", key.taskId);
        if (tail.terminalSeq !== null && cursor >= tail.terminalSeq) return;
        if (Date.now() - waiter.lastSent >= opts.keepAliveMs) {
          yield { keepAlive: new Date() };
          waiter.lastSent = Date.now();
          continue;
        }
        await waitFor(tail, waiter);
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      tail.waiters.delete(waiter);
      release(tail);
    }
  }

  return {
    watch,
    start() {
      if (unsubscribe || closed) return;
      unsubscribe = bus.subscribe("task", (taskId) => {
        const watched = byTask.get(taskId);
        if (watched) for (const tail of watched) void refresh(tail);
      });
      schedulePoll();
      keepAliveTimer = setInterval(keepAliveTick, keepAliveTickMs);
      keepAliveTimer.unref();
    },
    async close() {
      if (closed) return;
      closed = true;
      unsubscribe?.();
      clearTimeout(pollTimer);
      clearInterval(keepAliveTimer);
      for (const tail of tails.values()) notify(tail);
      await polling;
    },
    stats: () => ({ tails: tails.size, watchers, tailReads, catchUpReads, polls }),
  };
}

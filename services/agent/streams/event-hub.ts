// The per-process event hub (DESIGN.md rule 2): every stream of a task's events
// — WatchTask, RunStream, Converse, SSE — reads through here.
//
// - One shared tail per watched task: a read of `task_events` after the newest
//   sequence seen, started by a wake-up hint for the task (bus topic "task") or,
//   when hints are lost, by a batched poll of the watched tasks' `last_sequence`
//   every `pollMs` (≤ 2 s, rule 3). One read per new batch of events, however
//   many watchers the task has; none for the events this process writes, which
//   the task writer hands over after commit (`committed`) when they follow the
//   tail's newest one.
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
  hinted,
  notify,
  poll,
  READ_PAGE,
  release,
  type Tail,
  type TaskSeed,
  takeCommitted,
  type Waiter,
} from "./hub-tails.js";
import type { StreamMetrics } from "./stream-metrics.js";

export type WatchItem = { event: StoredEvent; keepAlive?: undefined } | { event?: undefined; keepAlive: Date };

/** A watch's items; `return` ends it (its place in the tail goes). */
export interface WatchStream extends AsyncIterableIterator<WatchItem, void> {
  return(value?: unknown): Promise<IteratorResult<WatchItem, void>>;
}

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
  watch(task: TaskRow, afterSequence: number, signal: AbortSignal): WatchStream;
  /** Told by this process's task writer, after commit and before the write's wake-up hint, of
   * the events it wrote: a watched task's tail takes them without reading the log. */
  committed(task: Pick<TaskRow, "tenant_id" | "task_id">, events: readonly StoredEvent[]): void;
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
      new HubWatch(
        hub,
        { tenant_id: task.tenant_id, task_id: task.task_id, state: task.state, last_sequence: task.last_sequence },
        afterSequence,
        signal,
      ),
    committed(task, events) {
      // Before start() no hint reaches the tails, so none could be skipped for these events.
      if (!hub.closed && unsubscribe) takeCommitted(hub, task, events);
    },
    start() {
      if (unsubscribe || hub.closed) return;
      unsubscribe = opts.bus.subscribe("task", (taskId, origin) => {
        const watched = hub.byTask.get(taskId);
        if (watched) for (const tail of watched) hinted(hub, tail, origin);
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

const DONE: IteratorReturnResult<void> = Object.freeze({ done: true, value: undefined });

/**
 * One watch: a plain iterator object rather than an async generator, because an idle stream
 * keeps its watch for its whole life, and a suspended generator keeps its frame, register file
 * and resume closures. Between pulls it holds its cursor, its place in the tail and (while a pull
 * waits) the pull's two resolving functions; it is the tail's waiter itself.
 *
 * It behaves as the generator did: the work starts at the first pull; the cursor moves past an
 * event only when the next pull comes (the consumer has sent it), so a stream that ends between
 * pulls resumes from the last event it sent; it ends after the terminal event, quietly when the
 * signal fires, with UNAVAILABLE when the hub closes.
 */
class HubWatch implements WatchStream, Waiter {
  lastSent = 0;
  private cursor: number;
  private tail: Tail | undefined;
  private started = false;
  private finished = false;
  /** Events to send, from `index` on. */
  private batch: StoredEvent[] | undefined;
  private index = 0;
  /** What the last pull was answered with, applied when the next pull comes. */
  private sent: StoredEvent | "keepAlive" | undefined;
  /** Whether it is in its tail's waiters. */
  private waiting = false;
  private resolve: ((result: IteratorResult<WatchItem, void>) => void) | undefined;
  private reject: ((error: unknown) => void) | undefined;

  constructor(
    private readonly hub: Hub,
    private readonly task: TaskSeed,
    afterSequence: number,
    private readonly signal: AbortSignal,
  ) {
    this.cursor = afterSequence;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<WatchItem, void>> {
    if (this.finished) return Promise.resolve(DONE);
    if (this.resolve) return Promise.reject(new Error("a watch is pulled one message at a time"));
    return new Promise<IteratorResult<WatchItem, void>>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.pull();
    });
  }

  return(_value?: unknown): Promise<IteratorResult<WatchItem, void>> {
    this.finish(DONE);
    return Promise.resolve(DONE);
  }

  throw(error?: unknown): Promise<IteratorResult<WatchItem, void>> {
    this.fail(error);
    return Promise.reject(error);
  }

  /** Its tail moved, its signal fired, a keep-alive is due or the hub closes: the waiting pull goes on, in a microtask
   * (waking happens while the tail's waiters are being walked). */
  wake(): void {
    if (!this.waiting) return;
    this.waiting = false;
    this.tail?.waiters.delete(this);
    queueMicrotask(() => this.step());
  }

  /** The stream's signal aborted. Bound once: an object listener (handleEvent) gets an async closure per listener from
   * Node's EventTarget. */
  private onAbort: (() => void) | undefined;

  /** A new pull: the previous answer was sent. */
  private pull(): void {
    const sent = this.sent;
    this.sent = undefined;
    if (sent === "keepAlive") this.lastSent = Date.now();
    else if (sent !== undefined) {
      this.cursor = sent.sequence;
      this.lastSent = Date.now();
      if (isTerminalEvent(sent)) {
        this.finish(DONE);
        return;
      }
      if (this.signal.aborted || this.hub.closed) this.batch = undefined;
    }
    if (!this.started) {
      this.started = true;
      try {
        if (!this.begin()) {
          this.finish(DONE);
          return;
        }
      } catch (error) {
        this.fail(error);
        return;
      }
    }
    this.step();
  }

  /** Takes its place in the task's tail; false when there is nothing to watch. */
  private begin(): boolean {
    const { hub, task } = this;
    if (hub.closed) throw shuttingDown(this.cursor);
    // Ended, and the caller has seen everything: nothing will ever come.
    if (isTerminal(task.state) && this.cursor >= Number(task.last_sequence)) return false;
    this.tail = acquire(hub, task);
    // A stream with nothing to replay says it is established with a keep-alive at once;
    // one with events to replay (the tail may still be reading them) waits for them.
    this.lastSent = this.cursor >= Number(task.last_sequence) ? 0 : Date.now();
    this.onAbort = this.wake.bind(this);
    this.signal.addEventListener("abort", this.onAbort, { once: true });
    return true;
  }

  /** Goes on until it has something to answer the pending pull with, must wait, or ends. */
  private step(): void {
    if (this.finished || !this.resolve) return;
    const { hub, tail } = this;
    try {
      for (;;) {
        if (this.signal.aborted) {
          this.finish(DONE);
          return;
        }
        if (hub.closed) throw shuttingDown(this.cursor);
        const batch = this.batch;
        if (batch !== undefined) {
          const event = batch[this.index++];
          if (this.index >= batch.length) this.batch = undefined;
          // Never a gap or a repeat; the next round re-reads.
          if (event === undefined || event.sequence !== this.cursor + 1) {
            this.batch = undefined;
            continue;
          }
          this.sent = event;
          this.answer({ event });
          return;
        }
        const next = tail!.window.after(this.cursor, READ_PAGE);
        if (next === undefined) {
          // Behind the window: read the log at this watcher's own pace.
          const key = tail!.key;
          catchUp(hub, key, this.cursor).then(
            (read) => {
              if (this.finished) return;
              if (read.length === 0) {
                this.fail(notFound("task", key.taskId)); // the log is gone: deleted
                return;
              }
              this.take(read);
              this.step();
            },
            (error: unknown) => this.fail(error),
          );
          return;
        }
        if (next.length > 0) {
          this.take(next);
          continue;
        }
        if (tail!.gone) throw notFound("task", tail!.key.taskId);
        const terminalSeq = tail!.window.terminalSeq;
        if (terminalSeq !== null && this.cursor >= terminalSeq) {
          this.finish(DONE);
          return;
        }
        if (Date.now() - this.lastSent >= hub.opts.keepAliveMs) {
          this.sent = "keepAlive";
          this.answer({ keepAlive: new Date() });
          return;
        }
        // No timer per wait: with thousands of watchers, one keep-alive tick for all is far cheaper.
        this.waiting = true;
        tail!.waiters.add(this);
        return;
      }
    } catch (error) {
      this.fail(error);
    }
  }

  private take(batch: StoredEvent[]): void {
    this.batch = batch;
    this.index = 0;
  }

  private answer(item: WatchItem): void {
    const resolve = this.resolve!;
    this.resolve = undefined;
    this.reject = undefined;
    resolve({ done: false, value: item });
  }

  private finish(result: IteratorReturnResult<void>): void {
    const resolve = this.resolve;
    this.cleanUp();
    resolve?.(result);
  }

  private fail(error: unknown): void {
    const reject = this.reject;
    this.cleanUp();
    reject?.(error);
  }

  private cleanUp(): void {
    this.resolve = undefined;
    this.reject = undefined;
    if (this.finished) return;
    this.finished = true;
    this.batch = undefined;
    this.sent = undefined;
    const tail = this.tail;
    if (!tail) return;
    this.tail = undefined;
    this.waiting = false;
    if (this.onAbort) this.signal.removeEventListener("abort", this.onAbort);
    tail.waiters.delete(this);
    release(this.hub, tail);
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

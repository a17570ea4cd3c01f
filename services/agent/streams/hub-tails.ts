// The event hub's shared tails (event-hub.ts): one per watched task, holding its
// window, its watchers' count and waiters, read once for all of them when a wake-up
// hint names the task or the poll finds its last_sequence moved. Also the hub's
// state, which these functions and the watchers share.
import type { Sql } from "../../shared/db/database.js";
import type { Logger } from "../../shared/log.js";
import type { HintOrigin } from "../../shared/wakeup/bus.js";
import type { StoredEvent } from "../model/change.js";
import type { TaskKey, TaskRow } from "../model/task.js";
import { listEvents } from "../store/list-events.js";
import { WATCHED_PER_QUERY, watchedSequences } from "../store/watched-sequences.js";
import { asLogged } from "../wire/event-forms.js";
import type { StreamMetrics } from "./stream-metrics.js";
import { TailWindow, type WindowLimits } from "./tail-window.js";

/** Events per read: the tail's and a catching-up watcher's. Small pages keep a slow
 * watcher's footprint small; a busy task simply takes several. */
export const READ_PAGE = 64;

/** What the tails need of the hub's options. */
export interface HubSettings {
  sql: Sql;
  logger: Logger;
  metrics?: StreamMetrics;
  pollMs: number;
  keepAliveMs: number;
  windowEvents: number;
}

/** The state of one process's hub. */
export interface Hub {
  opts: HubSettings;
  limits: WindowLimits;
  tails: Map<string, Tail>;
  /** Hints carry only the task id. */
  byTask: Map<string, Set<Tail>>;
  /** Catch-up reads in flight, by task and cursor: watchers that fell behind together (a burst of
   * reconnects from the same point) share each page instead of each reading it. Only reads in
   * flight are shared; nothing is kept after. */
  catchUps: Map<string, Promise<StoredEvent[]>>;
  counts: { watchers: number; tailReads: number; catchUpReads: number; polls: number };
  closed: boolean;
}

export interface Tail {
  key: TaskKey;
  mapKey: string;
  /** The newest events read; its `lastSeq` is where the next read starts. */
  window: TailWindow;
  /** The task was deleted. */
  gone: boolean;
  watchers: number;
  reading: boolean;
  again: boolean;
  lastRead: number;
  /** Events this process committed that joined the window without a read (`takeCommitted`):
   * the local wake-up hints of those writes, still on their way, need no read either. */
  hintsToSkip: number;
  /** Watchers waiting for the tail to move. */
  waiters: Set<Waiter>;
}

/** A watcher while it waits: woken when its tail moves, its stream ends, or a keep-alive is due. */
export interface Waiter {
  /** Ends its wait; nothing when it is not waiting. */
  wake(): void;
  /** When the watcher last sent something. */
  lastSent: number;
}

const mapKeyOf = (key: TaskKey) => `${key.tenantId}/${key.taskId}`;

/** What a watch needs of the task row it starts from. */
export type TaskSeed = Pick<TaskRow, "tenant_id" | "task_id" | "state" | "last_sequence">;

export function acquire(hub: Hub, task: TaskSeed): Tail {
  const key = { tenantId: task.tenant_id, taskId: task.task_id };
  const mapKey = mapKeyOf(key);
  let tail = hub.tails.get(mapKey);
  const known = Number(task.last_sequence);
  if (!tail) {
    // Seed the window with the newest events, so that watchers starting near the
    // beginning of a young task (the common case) all read from it.
    const seed = Math.max(0, known - Math.min(hub.opts.windowEvents, READ_PAGE));
    tail = {
      key,
      mapKey,
      window: new TailWindow(seed, hub.limits),
      gone: false,
      watchers: 0,
      reading: false,
      again: false,
      lastRead: Date.now(),
      hintsToSkip: 0,
      waiters: new Set(),
    };
    hub.tails.set(mapKey, tail);
    const siblings = hub.byTask.get(key.taskId) ?? new Set<Tail>();
    siblings.add(tail);
    hub.byTask.set(key.taskId, siblings);
    hub.opts.metrics?.watchedTasks.set(hub.tails.size);
    void refresh(hub, tail);
  } else if (known > tail.window.lastSeq) {
    // This caller saw a newer projection than the tail has read: its hint is on the way, or lost.
    void refresh(hub, tail);
  }
  tail.watchers++;
  hub.counts.watchers++;
  return tail;
}

export function release(hub: Hub, tail: Tail): void {
  tail.watchers--;
  hub.counts.watchers--;
  if (tail.watchers === 0 && hub.tails.get(tail.mapKey) === tail) {
    hub.tails.delete(tail.mapKey);
    const siblings = hub.byTask.get(tail.key.taskId);
    siblings?.delete(tail);
    if (siblings?.size === 0) hub.byTask.delete(tail.key.taskId);
    hub.opts.metrics?.watchedTasks.set(hub.tails.size);
  }
}

/**
 * Events this process has just committed for a task, from the writer. When they come right after
 * the tail's newest event and no read is in flight, they join the window at once, and the write's
 * local wake-up hint (published after this) is skipped: a log read per write less, for every
 * stream of a task this process runs. Otherwise they are left to that hint's read, as any other
 * write. Each event is taken as the log holds it (`asLogged`).
 */
export function takeCommitted(
  hub: Hub,
  task: Pick<TaskRow, "tenant_id" | "task_id">,
  events: readonly StoredEvent[],
): void {
  const tail = hub.tails.get(mapKeyOf({ tenantId: task.tenant_id, taskId: task.task_id }));
  const first = events[0];
  if (!tail || !first || tail.reading || tail.gone || first.sequence !== tail.window.lastSeq + 1) return;
  tail.window.append(events.map(asLogged), hub.tails.size);
  tail.hintsToSkip++;
  tail.lastRead = Date.now();
  notify(tail);
}

/** A wake-up hint for a task this tail watches: read what is new, unless it is the hint of a write already taken. */
export function hinted(hub: Hub, tail: Tail, origin: HintOrigin): void {
  if (origin === "local" && tail.hintsToSkip > 0) {
    tail.hintsToSkip--;
    return;
  }
  void refresh(hub, tail);
}

/** Reads what is new for a tail; one read at a time per tail, a hint meanwhile means one more. */
export async function refresh(hub: Hub, tail: Tail): Promise<void> {
  if (tail.reading) {
    tail.again = true;
    return;
  }
  tail.reading = true;
  try {
    do {
      tail.again = false;
      const events = await listEvents(hub.opts.sql, tail.key, tail.window.lastSeq, READ_PAGE);
      hub.counts.tailReads++;
      hub.opts.metrics?.logReads.inc({ reader: "tail" });
      tail.lastRead = Date.now();
      if (events.length > 0) {
        tail.window.append(events, hub.tails.size);
        notify(tail);
      }
      if (events.length === READ_PAGE) tail.again = true;
    } while (tail.again && tail.watchers > 0 && !hub.closed);
  } catch (error) {
    // Watchers keep waiting; the next hint or poll reads again.
    hub.opts.logger.warn({ err: error, taskId: tail.key.taskId }, "could not read a watched task's events; will retry");
  } finally {
    tail.reading = false;
  }
}

/** The fallback for lost hints: one query for every watched task not read lately. */
export async function poll(hub: Hub): Promise<void> {
  const now = Date.now();
  const due = [...hub.tails.values()].filter((t) => !t.reading && now - t.lastRead >= hub.opts.pollMs);
  for (let i = 0; i < due.length && !hub.closed; i += WATCHED_PER_QUERY) {
    const chunk = due.slice(i, i + WATCHED_PER_QUERY);
    const rows = await watchedSequences(
      hub.opts.sql,
      chunk.map((c) => c.key),
    );
    hub.counts.polls++;
    hub.opts.metrics?.polls.inc();
    const newest = new Map(rows.map((r) => [mapKeyOf(r), r.lastSequence]));
    for (const tail of chunk) {
      const last = newest.get(tail.mapKey);
      if (last === undefined) {
        tail.gone = true;
        notify(tail);
      } else if (last > tail.window.lastSeq) {
        void refresh(hub, tail);
      } else {
        tail.lastRead = Date.now();
      }
    }
  }
}

export function notify(tail: Tail): void {
  const waiters = [...tail.waiters];
  tail.waiters.clear();
  for (const waiter of waiters) waiter.wake();
}

// Waiting for a task to change, for `WaitTask` and for a `Run` that attaches to a task running
// elsewhere. All the waits of a process share one subscription to `task` hints, looked up by task
// id, and one fallback poll for lost hints (DESIGN.md rule 3): every `pollMs`, a single query
// reads the `last_sequence` of every task that someone is waiting on. So while its task stands
// still a wait costs the database nothing of its own, however many there are; waits that each
// re-read their task every `pollMs` would make a thousand long polls 500 statements a second.
import type { Sql } from "../../shared/db/database.js";
import type { Logger } from "../../shared/log.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import type { TaskKey } from "../model/task.js";
import { WATCHED_PER_QUERY, watchedSequences } from "../store/watched-sequences.js";

/** setTimeout's largest delay; a longer wait simply ends there and the caller waits again. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface TaskWaiters {
  /** Follows a task: from now on its hints are kept for `TaskWait.next`. */
  follow(key: TaskKey): TaskWait;
  /** Stops hints and the poll; waits still end at their time or signal. */
  close(): void;
  stats(): { following: number; polls: number };
}

export interface TaskWait {
  /**
   * Resolves once the task may have changed since the caller read it at `knownSequence`: at once
   * when a hint named it since the last wait ended, else at its next hint, or when the poll finds
   * its `last_sequence` past `knownSequence` or the task gone; or when `ms` pass or `signal` fires.
   */
  next(knownSequence: number, ms: number, signal?: AbortSignal): Promise<void>;
  /** Stops following the task. */
  stop(): void;
}

export interface TaskWaitersOptions {
  sql: Sql;
  bus: WakeupBus;
  logger: Logger;
  pollMs: number;
}

export function createTaskWaiters(opts: TaskWaitersOptions): TaskWaiters {
  const byTask = new Map<string, Set<Follower>>();
  let waiting = 0;
  let polls = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const unsubscribe = opts.bus.subscribe("task", (taskId) => {
    const set = byTask.get(taskId);
    if (set) for (const f of set) f.wake();
  });

  /** The poll runs only while a wait is on. */
  const waits = {
    began(): void {
      waiting++;
      if (!timer && !closed) schedulePoll();
    },
    ended(): void {
      waiting--;
    },
  };

  function schedulePoll(): void {
    timer = setTimeout(() => {
      poll()
        .catch((err: unknown) => opts.logger.warn({ err }, "polling the tasks being waited on failed; will retry"))
        .finally(() => {
          timer = undefined;
          if (waiting > 0 && !closed) schedulePoll();
        });
    }, opts.pollMs);
    timer.unref();
  }

  /** One query per chunk of the tasks whose waits are on. */
  async function poll(): Promise<void> {
    const byKey = new Map<string, Follower[]>();
    for (const followers of byTask.values()) {
      for (const f of followers) {
        if (!f.waiting) continue;
        const k = `${f.key.tenantId}/${f.key.taskId}`;
        const list = byKey.get(k);
        if (list) list.push(f);
        else byKey.set(k, [f]);
      }
    }
    const keys = [...byKey.values()].map((list) => list[0]!.key);
    for (let i = 0; i < keys.length && !closed; i += WATCHED_PER_QUERY) {
      const chunk = keys.slice(i, i + WATCHED_PER_QUERY);
      const rows = await watchedSequences(opts.sql, chunk);
      polls++;
      const newest = new Map(rows.map((r) => [`${r.tenantId}/${r.taskId}`, r.lastSequence]));
      for (const key of chunk) {
        const k = `${key.tenantId}/${key.taskId}`;
        const last = newest.get(k);
        // A wait that ended meanwhile is reading the task already.
        for (const f of byKey.get(k)!) if (f.waiting && (last === undefined || last > f.known)) f.wake();
      }
    }
  }

  return {
    follow(key) {
      const follower = new Follower(key, waits, () => {
        const set = byTask.get(key.taskId);
        if (set?.delete(follower) && set.size === 0) byTask.delete(key.taskId);
      });
      let set = byTask.get(key.taskId);
      if (!set) {
        set = new Set();
        byTask.set(key.taskId, set);
      }
      set.add(follower);
      return follower;
    },
    close() {
      closed = true;
      unsubscribe();
      clearTimeout(timer);
    },
    stats: () => ({ following: [...byTask.values()].reduce((n, set) => n + set.size, 0), polls }),
  };
}

class Follower implements TaskWait {
  /** The sequence the caller last read, while a wait is on. */
  known = 0;
  /** A hint came while no wait was on: the next wait ends at once. */
  private hinted = false;
  private end: (() => void) | undefined;

  constructor(
    readonly key: TaskKey,
    private readonly waits: { began(): void; ended(): void },
    private readonly unfollow: () => void,
  ) {}

  stop(): void {
    this.end?.();
    this.unfollow();
  }

  get waiting(): boolean {
    return this.end !== undefined;
  }

  next(knownSequence: number, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.hinted || ms <= 0 || signal?.aborted) {
      this.hinted = false;
      return Promise.resolve();
    }
    this.known = knownSequence;
    return new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", end);
        this.end = undefined;
        this.waits.ended();
        resolve();
      };
      const timer = setTimeout(end, Math.min(ms, MAX_TIMER_MS));
      signal?.addEventListener("abort", end, { once: true });
      this.end = end;
      this.waits.began();
    });
  }

  /** A hint named the task, or the poll found it moved. */
  wake(): void {
    if (this.end) this.end();
    else this.hinted = true;
  }
}

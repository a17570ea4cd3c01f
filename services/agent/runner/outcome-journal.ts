// The outcomes this runner recorded recently, kept in memory so that they can
// be written again after a failover that lost their commit. With asynchronous
// replication Postgres acknowledges a commit the standby may not have yet; once
// the standby is promoted, a task whose outcome a client already read can be
// back at RUNNING under the attempt's lease, and would run again with perhaps
// another result. After an outage or a promotion the runner re-applies each
// remembered outcome, fenced by its lease and attempt: it lands only where the
// task is still exactly that attempt, so a commit that survived (or a task that
// moved on) is left alone. The decision is the same one (same output, same end
// time), written after the same last event, so the events get the sequences
// they had and webhook-ids (derived from task, sequence and endpoint) repeat.
import type { Logger } from "../../shared/log.js";
import type { Decide } from "../model/change.js";
import type { TaskRow } from "../model/task.js";
import type { TaskWriter } from "../store/task-writer.js";

export interface OutcomeJournal {
  /** Remembers that `decide` was committed for `held`, the task as the attempt held it just before. */
  record(held: TaskRow, decide: Decide): void;
  /** The remembered outcomes still within the window, oldest first. */
  recent(): { held: TaskRow; decide: Decide }[];
  /** Writes every remembered outcome again where its attempt still holds the task; returns how many landed. */
  reapply(writer: Pick<TaskWriter, "changeHeld">, logger: Logger): Promise<number>;
}

/** Long enough for a failover to be noticed (lag, HA manager, detection), short enough to stay small. */
export const OUTCOME_WINDOW_MS = 5 * 60_000;
export const OUTCOME_LIMIT = 2000;

export function createOutcomeJournal(
  opts: { windowMs?: number; limit?: number; now?: () => number } = {},
): OutcomeJournal {
  const windowMs = opts.windowMs ?? OUTCOME_WINDOW_MS;
  const limit = opts.limit ?? OUTCOME_LIMIT;
  const now = opts.now ?? Date.now;
  // Insertion order is age order: a Map drops its oldest first.
  const entries = new Map<string, { held: TaskRow; decide: Decide; at: number }>();

  const prune = () => {
    const oldest = now() - windowMs;
    for (const [key, entry] of entries) {
      if (entries.size <= limit && entry.at >= oldest) break;
      entries.delete(key);
    }
  };

  const recent = () => {
    prune();
    return [...entries.values()].map(({ held, decide }) => ({ held, decide }));
  };

  return {
    record(held, decide) {
      if (!held.lease_id) return;
      const key = `${held.tenant_id}/${held.task_id}/${held.lease_id}`;
      entries.delete(key);
      entries.set(key, { held, decide, at: now() });
      prune();
    },
    recent,
    async reapply(writer, logger) {
      let landed = 0;
      for (const { held, decide } of recent()) {
        // The lease names one claim, so one attempt; the attempt is checked too, in case a lease id were reused.
        const sameAttempt: Decide = (task) => (task.attempt === held.attempt ? decide(task) : null);
        const result = await writer.changeHeld(held, sameAttempt, { leaseId: held.lease_id! });
        if (result.status !== "changed") continue;
        landed++;
        logger.warn(
          { taskId: held.task_id, tenant: held.tenant_id, attempt: held.attempt, state: result.task.state },
          "re-applied the outcome of an attempt whose commit the database lost (failover)",
        );
      }
      return landed;
    },
  };
}

// A store error inside an attempt is not the agent's failure (issue 7): when the
// database cannot be reached, the attempt stops and the task goes back to the
// queue once the database answers again, as after a lost lease. These are the
// pieces the runner and the agent context share to tell that case apart.
import { isDatabaseUnavailable, isTransactionConflict } from "../../shared/db/database.js";
import type { Decide } from "../model/change.js";

/** Thrown into the agent's context calls once the store is unreachable. The
 * message is all a client could ever see: no address, no driver text. */
export class StoreUnavailable extends Error {
  override name = "StoreUnavailable";
  constructor(cause?: unknown) {
    super("the task store is unavailable; this attempt stops and the task will be retried", { cause });
  }
}

/** Thrown into the agent's context calls when the store refused a write (not an
 * outage): the agent may fail with it; the driver's text stays in `cause`. */
export class StoreRejected extends Error {
  override name = "StoreRejected";
  constructor(cause?: unknown) {
    super("the task store rejected what the agent reported", { cause });
  }
}

/** Transient store trouble: unreachable, starting up, read-only, or a conflict that outlived its retries. */
export function isStoreUnavailable(error: unknown): boolean {
  if (error instanceof StoreUnavailable) return true;
  return isTransactionConflict(error) || isDatabaseUnavailable(error);
}

/** The attempt stopped because the store was unreachable: queue the task again
 * without charging an attempt (the agent did not fail; compare `handBack`). */
export function handBackAfterOutage(now = new Date()): Decide {
  return (task) => {
    if (task.state !== "RUNNING") return null;
    return {
      patch: { state: "QUEUED", run_after: now, lease_owner: null, lease_id: null, lease_expires_at: null },
      events: [
        {
          kind: "log",
          data: {
            level: "warn",
            message: `attempt ${task.attempt} stopped: the task store was unavailable; the task is queued again`,
          },
        },
      ],
      retry: "store_outage",
    };
  };
}

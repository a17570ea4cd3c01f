// While a replica waits for a writable database primary at start-up (it was
// started against a standby, or during a failover), its own services answer
// UNAVAILABLE (DATABASE_UNAVAILABLE with RetryInfo) without touching the
// database: health and reflection stay open. Opened once the database is
// migrated; it is never held again (later outages are the edge's business).
import type { Interceptor } from "@connectrpc/connect";
import { unavailable } from "../../shared/errors.js";

export interface DatabaseGate {
  interceptor: Interceptor;
  /** From now on agentd's services answer UNAVAILABLE. */
  hold(): void;
  /** Calls pass again. */
  open(): void;
}

export function createDatabaseGate(): DatabaseGate {
  let held = false;
  return {
    interceptor: (next) => (req) => {
      if (held && req.service.typeName.startsWith("agentd.")) {
        return Promise.reject(unavailable("the database has no writable primary yet; retry with backoff"));
      }
      return next(req);
    },
    hold: () => {
      held = true;
    },
    open: () => {
      held = false;
    },
  };
}

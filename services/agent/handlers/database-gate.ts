// While a replica waits for a writable database primary at start-up (it was
// started against a standby, or during a failover), its own services answer
// UNAVAILABLE (DATABASE_UNAVAILABLE with RetryInfo) without touching the
// database: health and reflection stay open. Opened once the database is
// migrated; it never closes again (later outages are the edge's business).
import type { Interceptor } from "@connectrpc/connect";
import { unavailable } from "../../shared/errors.js";

export interface DatabaseGate {
  interceptor: Interceptor;
  close(): void;
  open(): void;
}

export function createDatabaseGate(): DatabaseGate {
  let closed = false;
  return {
    interceptor: (next) => async (req) => {
      if (closed && req.service.typeName.startsWith("agentd.")) {
        throw unavailable("the database has no writable primary yet; retry with backoff");
      }
      return next(req);
    },
    close: () => {
      closed = true;
    },
    open: () => {
      closed = false;
    },
  };
}

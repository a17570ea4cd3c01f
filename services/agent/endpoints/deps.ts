import type { Sql } from "../../shared/db/database.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import type { WebhookOutbox } from "../outbox/outbox.js";

/** What the WebhookService use cases need, passed in. */
export interface EndpointDeps {
  sql: Sql;
  bus: WakeupBus;
  /** Told about endpoint changes, so this replica's outbox sees them at once (others within its cache time). */
  outbox: Pick<WebhookOutbox, "invalidate">;
}

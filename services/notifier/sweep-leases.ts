// Deliveries whose notifier died (or stalled past its lease). One whose attempt
// had started (`started_at`): its outcome is unknown, so it is recorded as lost
// and the delivery follows the retry schedule like any failed attempt — same
// webhook-id, so a receiver that did get it drops the duplicate. One only
// claimed, never started: nothing was sent, so it is handed back as it was, due
// at once, with no attempt charged.
import type { Sql } from "../shared/db/database.js";
import { type Next, nextAfterAttempt, type RetryPolicy } from "./retry-schedule.js";

const LOST_ATTEMPT_ERROR =
  "the notifier sending this attempt stopped before it finished (lease expired); outcome unknown";

interface Expired {
  tenant_id: string;
  delivery_id: string;
  attempts: number;
  retries: boolean;
  /** When the lost attempt started; null: claimed, never started. */
  started_at: Date | null;
}

/** What the sweep did with one delivery: `started` false means handed back uncharged. */
export interface Swept {
  delivery_id: string;
  tenant_id: string;
  started: boolean;
  next: Next;
}

export async function sweepExpiredLeases(
  sql: Sql,
  policy: RetryPolicy,
  opts: { limit: number; random?: () => number },
): Promise<Swept[]> {
  const random = opts.random ?? Math.random;
  return sql.begin(async (tx) => {
    const rows = await tx<Expired[]>`
      SELECT tenant_id, delivery_id, attempts, retries, started_at FROM webhook_deliveries
      WHERE state = 'SENDING' AND lease_expires_at < now()
      ORDER BY lease_expires_at
      LIMIT ${opts.limit}
      FOR UPDATE SKIP LOCKED
    `;
    if (rows.length === 0) return [];
    const decided = rows.map((r) => ({
      ...r,
      started: r.started_at !== null,
      next:
        r.started_at === null
          ? ({ state: "PENDING", delayMs: 0 } as const)
          : nextAfterAttempt({ kind: "lost", status: 0 }, r.attempts, policy, { retries: r.retries, random: random() }),
    }));
    const changes = decided.map((r) => ({
      tenant_id: r.tenant_id,
      delivery_id: r.delivery_id,
      attempt: r.attempts,
      state: r.next.state,
      delay_ms: r.next.state === "PENDING" ? r.next.delayMs : 0,
      time: (r.started_at ?? new Date()).toISOString(),
      started: r.started,
    }));
    await tx`
      WITH c AS (
        SELECT * FROM jsonb_to_recordset(${tx.json(changes as never)}::jsonb)
          AS c(tenant_id text, delivery_id uuid, attempt int, state text, delay_ms bigint, time timestamptz, started boolean)
      ), moved AS (
        UPDATE webhook_deliveries d SET
          state = c.state, next_attempt_at = now() + c.delay_ms * interval '1 millisecond', started_at = NULL,
          lease_owner = NULL, lease_id = NULL, lease_expires_at = NULL, update_time = now()
        FROM c WHERE d.tenant_id = c.tenant_id AND d.delivery_id = c.delivery_id
      )
      INSERT INTO webhook_attempts (tenant_id, delivery_id, attempt, time, error)
      SELECT c.tenant_id, c.delivery_id, c.attempt, c.time, ${LOST_ATTEMPT_ERROR} FROM c WHERE c.started
      ON CONFLICT (tenant_id, delivery_id, attempt) DO NOTHING
    `;
    return decided.map((r) => ({
      tenant_id: r.tenant_id,
      delivery_id: r.delivery_id,
      started: r.started,
      next: r.next,
    }));
  });
}

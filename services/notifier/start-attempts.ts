// The write that starts attempts: right before their HTTP requests, the claimed
// deliveries count the attempt and record when it started — fenced by their
// lease ids, so a claim whose lease was lost meanwhile is not sent. Until this
// write a claim costs nothing: if its notifier dies, the lease sweep hands the
// delivery back without charging an attempt (sweep-leases.ts).
import type { Sql } from "../shared/db/database.js";
import type { ClaimedDelivery } from "./claim-deliveries.js";

/** Marks the claims started (one statement). Returns the new row ids (the update moved
 * each row) of those still held; the others must not be sent. */
export async function startAttempts(
  sql: Sql,
  claims: readonly Pick<ClaimedDelivery, "row_id" | "delivery_id" | "lease_id">[],
): Promise<Map<string, string>> {
  if (claims.length === 0) return new Map();
  const rows = await sql<{ delivery_id: string; row_id: string }[]>`
    WITH locked AS (
      -- Locked in key order, as the other many-row writers of deliveries lock: no deadlock.
      SELECT ctid AS row_id FROM webhook_deliveries
      WHERE ctid = ANY (${claims.map((c) => c.row_id)}::tid[]) AND lease_id = ANY (${claims.map((c) => c.lease_id)}::uuid[])
        AND state = 'SENDING' AND started_at IS NULL
      ORDER BY tenant_id, delivery_id
      FOR UPDATE
    )
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1, started_at = now()
    WHERE d.ctid = ANY (ARRAY(SELECT row_id FROM locked))
    RETURNING d.delivery_id, d.ctid::text AS row_id
  `;
  return new Map(rows.map((r) => [r.delivery_id, r.row_id]));
}

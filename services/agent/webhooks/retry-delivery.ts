// RetryWebhookDelivery's write: schedules a delivery again now, same
// webhook-id, unless the use case's rule refuses it on the locked row. A
// finished delivery (a dead letter, or a success to resend) gets one attempt
// and no further schedule; a pending one just stops waiting.
import type { Sql } from "../../shared/db/database.js";
import type { DeliveryStateName } from "./records.js";

/** What the retry rule sees of a delivery, read under its row lock. */
export interface RetryCandidate {
  state: DeliveryStateName;
  endpointId: string | null;
  /** Null for a per-task webhook's delivery (no endpoint). */
  endpointEnabled: boolean | null;
}

export type RetryResult<R> = { status: "scheduled" } | { status: "missing" } | { status: "refused"; refusal: R };

export async function retryDelivery<R>(
  sql: Sql,
  tenantId: string,
  deliveryId: string,
  refuse: (delivery: RetryCandidate) => R | null,
): Promise<RetryResult<R>> {
  return sql.begin(async (tx): Promise<RetryResult<R>> => {
    const [row] = await tx<
      { state: DeliveryStateName; endpoint_id: string | null; endpoint_enabled: boolean | null }[]
    >`
      SELECT d.state, d.endpoint_id, e.enabled AS endpoint_enabled
      FROM webhook_deliveries d
      LEFT JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.endpoint_id = d.endpoint_id
      WHERE d.tenant_id = ${tenantId} AND d.delivery_id = ${deliveryId}
      FOR UPDATE OF d
    `;
    if (!row) return { status: "missing" };
    const refusal = refuse({ state: row.state, endpointId: row.endpoint_id, endpointEnabled: row.endpoint_enabled });
    if (refusal !== null) return { status: "refused", refusal };
    const finished = row.state === "FAILED" || row.state === "SUCCEEDED";
    await tx`
      UPDATE webhook_deliveries SET
        state = 'PENDING', next_attempt_at = now(), update_time = now()
        ${finished ? tx`, retries = false` : tx``}
      WHERE tenant_id = ${tenantId} AND delivery_id = ${deliveryId}
    `;
    return { status: "scheduled" };
  });
}

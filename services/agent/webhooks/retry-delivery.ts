// RetryWebhookDelivery: schedules a delivery again now, same webhook-id. A
// finished delivery (a dead letter, or a success to resend) gets one attempt
// and no further schedule; a pending one just stops waiting.
import { Code } from "@connectrpc/connect";
import type { Sql } from "../../shared/db/database.js";
import { notFound, rpcError } from "../../shared/errors.js";
import type { DeliveryRow } from "./records.js";

export async function retryDelivery(sql: Sql, tenantId: string, deliveryId: string): Promise<void> {
  await sql.begin(async (tx) => {
    const [row] = await tx<(DeliveryRow & { endpoint_enabled: boolean | null })[]>`
      SELECT d.state, d.endpoint_id, d.lease_expires_at, e.enabled AS endpoint_enabled
      FROM webhook_deliveries d
      LEFT JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.endpoint_id = d.endpoint_id
      WHERE d.tenant_id = ${tenantId} AND d.delivery_id = ${deliveryId}
      FOR UPDATE OF d
    `;
    if (!row) throw notFound("delivery", deliveryId);
    if (row.state === "SENDING") {
      throw rpcError(Code.FailedPrecondition, "DELIVERY_IN_FLIGHT", `delivery ${deliveryId} is being sent now; retry after this attempt ends`);
    }
    if (row.endpoint_id && row.endpoint_enabled === false) {
      throw rpcError(
        Code.FailedPrecondition,
        "ENDPOINT_DISABLED",
        `endpoint ${row.endpoint_id} is disabled; enable it with UpdateWebhookEndpoint first`,
        { metadata: { endpoint_id: row.endpoint_id } },
      );
    }
    const finished = row.state === "FAILED" || row.state === "SUCCEEDED";
    await tx`
      UPDATE webhook_deliveries SET
        state = 'PENDING', next_attempt_at = now(), update_time = now()
        ${finished ? tx`, retries = false` : tx``}
      WHERE tenant_id = ${tenantId} AND delivery_id = ${deliveryId}
    `;
  });
}

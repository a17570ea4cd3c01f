import type { Sql } from "../../shared/db/database.js";

/** Deletes an endpoint with its secrets, deliveries and their attempts. False when there was none. */
export async function deleteEndpoint(sql: Sql, tenantId: string, endpointId: string): Promise<boolean> {
  return sql.begin(async (tx) => {
    const deleted = await tx`
      DELETE FROM webhook_endpoints WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId} RETURNING 1
    `;
    if (deleted.length === 0) return false;
    await tx`
      DELETE FROM webhook_attempts a USING webhook_deliveries d
      WHERE a.tenant_id = ${tenantId} AND d.tenant_id = ${tenantId} AND d.endpoint_id = ${endpointId} AND a.delivery_id = d.delivery_id
    `;
    // Locked in key order, as the notifier's batched outcomes lock them: no deadlock.
    await tx`
      DELETE FROM webhook_deliveries WHERE tenant_id = ${tenantId} AND delivery_id IN (
        SELECT delivery_id FROM webhook_deliveries WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId}
        ORDER BY delivery_id FOR UPDATE
      )
    `;
    await tx`DELETE FROM webhook_secrets WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId}`;
    return true;
  });
}

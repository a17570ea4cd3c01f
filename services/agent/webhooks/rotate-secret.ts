// Secret rotation: the current secret keeps signing beside the new one until
// now + grace, so receivers can switch without losing a delivery. Rotations of
// one owner are serialised by locking the endpoint row (or the tenant row for
// the per-task secret), so exactly one secret is ever current.
import type { Sql } from "../../shared/db/database.js";
import { newId } from "../../shared/ids.js";
import { newSigningSecret } from "../../shared/webhooks/signing.js";

export interface Rotated {
  secret: string;
  /** When the previously current secret stops signing; null if there was none. */
  previousExpireTime: Date | null;
}

/** `endpointId` null: the tenant's per-task webhook secret, created on first call. Null when the endpoint does not exist. */
export async function rotateSecret(
  sql: Sql,
  tenantId: string,
  endpointId: string | null,
  graceMs: number,
): Promise<Rotated | null> {
  const secret = newSigningSecret();
  return sql.begin(async (tx) => {
    if (endpointId) {
      const [endpoint] = await tx`
        SELECT 1 FROM webhook_endpoints WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId} FOR UPDATE
      `;
      if (!endpoint) return null;
    } else {
      await tx`INSERT INTO tenants (tenant_id) VALUES (${tenantId}) ON CONFLICT DO NOTHING`;
      await tx`SELECT 1 FROM tenants WHERE tenant_id = ${tenantId} FOR UPDATE`;
    }
    const owner = endpointId ? tx`endpoint_id = ${endpointId}` : tx`endpoint_id IS NULL`;
    // Long-expired secrets sign nothing; drop them while we are here.
    await tx`DELETE FROM webhook_secrets WHERE tenant_id = ${tenantId} AND ${owner} AND expire_time <= now()`;
    const [previous] = await tx<{ expire_time: Date }[]>`
      UPDATE webhook_secrets SET expire_time = now() + ${graceMs} * interval '1 millisecond'
      WHERE tenant_id = ${tenantId} AND ${owner} AND expire_time IS NULL
      RETURNING expire_time
    `;
    await tx`
      INSERT INTO webhook_secrets (tenant_id, secret_id, endpoint_id, secret)
      VALUES (${tenantId}, ${newId()}, ${endpointId}, ${secret})
    `;
    return { secret, previousExpireTime: previous?.expire_time ?? null };
  });
}

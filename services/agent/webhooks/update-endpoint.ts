// Changes an endpoint. Consequences, in the same transaction: a new URL also
// applies to deliveries not yet made; disabling turns pending deliveries into
// dead letters (retryable once enabled again); enabling clears the reason the
// server disabled it and its failure streak.
import type { Sql } from "../../shared/db/database.js";
import type { EndpointRow } from "./records.js";

export interface EndpointChanges {
  url?: { url: string; target: string };
  eventTypes?: string[];
  description?: string;
  enabled?: boolean;
}

export async function updateEndpoint(
  sql: Sql,
  tenantId: string,
  endpointId: string,
  changes: EndpointChanges,
): Promise<EndpointRow | null> {
  return sql.begin(async (tx) => {
    const [current] = await tx<EndpointRow[]>`
      SELECT * FROM webhook_endpoints WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId} FOR UPDATE
    `;
    if (!current) return null;
    const enabling = changes.enabled === true && !current.enabled;
    const disabling = changes.enabled === false && current.enabled;
    const [row] = await tx<EndpointRow[]>`
      UPDATE webhook_endpoints SET
        url = ${changes.url?.url ?? current.url},
        target = ${changes.url?.target ?? current.target},
        event_types = ${changes.eventTypes ?? current.event_types}::text[],
        description = ${changes.description ?? current.description},
        enabled = ${changes.enabled ?? current.enabled},
        disabled_reason = ${enabling ? "" : current.disabled_reason},
        failing_since = ${enabling ? null : current.failing_since},
        update_time = now()
      WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId}
      RETURNING *
    `;
    if (changes.url && changes.url.url !== current.url) {
      await tx`
        UPDATE webhook_deliveries SET url = ${changes.url.url}, target = ${changes.url.target}, update_time = now()
        WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId} AND state IN ('PENDING', 'FAILED')
      `;
    }
    if (disabling) {
      await tx`
        UPDATE webhook_deliveries SET state = 'FAILED', update_time = now()
        WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId} AND state = 'PENDING'
      `;
    }
    return row!;
  });
}

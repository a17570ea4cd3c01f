import type { Sql } from "../../shared/db/database.js";
import type { EndpointRow } from "./records.js";

/** A page of the tenant's endpoints, oldest first, strictly after `afterId`. */
export async function listEndpoints(
  sql: Sql,
  tenantId: string,
  page: { afterId: string | null; limit: number },
): Promise<EndpointRow[]> {
  return sql<EndpointRow[]>`
    SELECT * FROM webhook_endpoints
    WHERE tenant_id = ${tenantId} ${page.afterId ? sql`AND endpoint_id > ${page.afterId}::uuid` : sql``}
    ORDER BY endpoint_id
    LIMIT ${page.limit}
  `;
}

export async function findEndpoint(sql: Sql, tenantId: string, endpointId: string): Promise<EndpointRow | undefined> {
  const [row] = await sql<EndpointRow[]>`
    SELECT * FROM webhook_endpoints WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId}
  `;
  return row;
}

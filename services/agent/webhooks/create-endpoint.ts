import type { Sql } from "../../shared/db/database.js";
import { newId } from "../../shared/ids.js";
import { newSigningSecret } from "../../shared/webhooks/signing.js";
import type { EndpointRow } from "./records.js";

export interface NewEndpoint {
  url: string;
  target: string;
  eventTypes: string[];
  description: string;
}

export type CreateEndpointResult =
  | { status: "created"; endpoint: EndpointRow; secret: string }
  | { status: "limit_reached" };

/** Inserts the endpoint with its first signing secret, unless the tenant has `maxPerTenant` endpoints already. */
export async function createEndpoint(
  sql: Sql,
  tenantId: string,
  input: NewEndpoint,
  maxPerTenant: number,
): Promise<CreateEndpointResult> {
  const secret = newSigningSecret();
  const endpointId = newId();
  return sql.begin(async (tx): Promise<CreateEndpointResult> => {
    const [count] = await tx<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM webhook_endpoints WHERE tenant_id = ${tenantId}`;
    if ((count?.n ?? 0) >= maxPerTenant) return { status: "limit_reached" };
    const [row] = await tx<EndpointRow[]>`
      INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, target, event_types, description)
      VALUES (${tenantId}, ${endpointId}, ${input.url}, ${input.target}, ${input.eventTypes}::text[], ${input.description})
      RETURNING *
    `;
    await tx`
      INSERT INTO webhook_secrets (tenant_id, secret_id, endpoint_id, secret)
      VALUES (${tenantId}, ${newId()}, ${endpointId}, ${secret})
    `;
    return { status: "created", endpoint: row!, secret };
  });
}

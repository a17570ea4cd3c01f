import { Code } from "@connectrpc/connect";
import type { Sql } from "../../shared/db/database.js";
import { rpcError } from "../../shared/errors.js";
import { newId } from "../../shared/ids.js";
import { newSigningSecret } from "../../shared/webhooks/signing.js";
import type { EndpointRow } from "./records.js";

const MAX_ENDPOINTS_PER_TENANT = 100;

export interface NewEndpoint {
  url: string;
  target: string;
  eventTypes: string[];
  description: string;
}

/** Inserts the endpoint with its first signing secret; the secret is returned here and never again. */
export async function createEndpoint(sql: Sql, tenantId: string, input: NewEndpoint): Promise<{ endpoint: EndpointRow; secret: string }> {
  const secret = newSigningSecret();
  const endpointId = newId();
  const endpoint = await sql.begin(async (tx) => {
    const [count] = await tx<{ n: number }[]>`SELECT count(*)::int AS n FROM webhook_endpoints WHERE tenant_id = ${tenantId}`;
    if ((count?.n ?? 0) >= MAX_ENDPOINTS_PER_TENANT) {
      throw rpcError(Code.ResourceExhausted, "TOO_MANY_ENDPOINTS", `a tenant may have at most ${MAX_ENDPOINTS_PER_TENANT} webhook endpoints`);
    }
    const [row] = await tx<EndpointRow[]>`
      INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, target, event_types, description)
      VALUES (${tenantId}, ${endpointId}, ${input.url}, ${input.target}, ${input.eventTypes}::text[], ${input.description})
      RETURNING *
    `;
    await tx`
      INSERT INTO webhook_secrets (tenant_id, secret_id, endpoint_id, secret)
      VALUES (${tenantId}, ${newId()}, ${endpointId}, ${secret})
    `;
    return row!;
  });
  return { endpoint, secret };
}

// CreateWebhookEndpoint: a tenant has at most MAX_ENDPOINTS_PER_TENANT endpoints;
// the new one gets its first signing secret, shown here and never again.
import type { EndpointRow } from "../webhooks/records.js";
import * as stored from "../webhooks/create-endpoint.js";
import type { EndpointDeps } from "./deps.js";

export async function createEndpoint(
  deps: Pick<EndpointDeps, "sql" | "outbox">,
  tenantId: string,
  input: stored.NewEndpoint,
): Promise<{ endpoint: EndpointRow; secret: string }> {
  const created = await stored.createEndpoint(deps.sql, tenantId, input);
  deps.outbox.invalidate(tenantId);
  return created;
}

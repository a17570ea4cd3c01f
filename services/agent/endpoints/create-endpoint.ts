// CreateWebhookEndpoint: a tenant has at most MAX_ENDPOINTS_PER_TENANT endpoints;
// the new one gets its first signing secret, shown here and never again.
import { Code } from "@connectrpc/connect";
import { rpcError } from "../../shared/errors.js";
import * as stored from "../webhooks/create-endpoint.js";
import type { EndpointRow } from "../webhooks/records.js";
import type { EndpointDeps } from "./deps.js";

export const MAX_ENDPOINTS_PER_TENANT = 100;

export async function createEndpoint(
  deps: Pick<EndpointDeps, "sql" | "outbox">,
  tenantId: string,
  input: stored.NewEndpoint,
): Promise<{ endpoint: EndpointRow; secret: string }> {
  const created = await stored.createEndpoint(deps.sql, tenantId, input, MAX_ENDPOINTS_PER_TENANT);
  if (created.status === "limit_reached") {
    throw rpcError(
      Code.ResourceExhausted,
      "TOO_MANY_ENDPOINTS",
      `a tenant may have at most ${MAX_ENDPOINTS_PER_TENANT} webhook endpoints`,
    );
  }
  deps.outbox.invalidate(tenantId);
  return { endpoint: created.endpoint, secret: created.secret };
}

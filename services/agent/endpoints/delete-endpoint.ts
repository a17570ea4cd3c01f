// DeleteWebhookEndpoint: the endpoint goes with its secrets, deliveries and attempts.
import { notFound } from "../../shared/errors.js";
import * as stored from "../webhooks/delete-endpoint.js";
import type { EndpointDeps } from "./deps.js";

export async function deleteEndpoint(
  deps: Pick<EndpointDeps, "sql" | "outbox">,
  tenantId: string,
  endpointId: string,
): Promise<void> {
  if (!(await stored.deleteEndpoint(deps.sql, tenantId, endpointId))) throw notFound("endpoint", endpointId);
  deps.outbox.invalidate(tenantId);
}

// UpdateWebhookEndpoint: the changes and their consequences for pending
// deliveries are applied together (webhooks/update-endpoint.ts).
import { notFound } from "../../shared/errors.js";
import type { EndpointRow } from "../webhooks/records.js";
import * as stored from "../webhooks/update-endpoint.js";
import type { EndpointDeps } from "./deps.js";

export async function updateEndpoint(
  deps: Pick<EndpointDeps, "sql" | "outbox">,
  tenantId: string,
  endpointId: string,
  changes: stored.EndpointChanges,
): Promise<EndpointRow> {
  const row = await stored.updateEndpoint(deps.sql, tenantId, endpointId, changes);
  if (!row) throw notFound("endpoint", endpointId);
  deps.outbox.invalidate(tenantId);
  return row;
}

// ListWebhookDeliveries: a filter on an endpoint that does not exist is NOT_FOUND, not an empty page.
import { notFound } from "../../shared/errors.js";
import * as stored from "../webhooks/list-deliveries.js";
import { findEndpoint } from "../webhooks/list-endpoints.js";
import type { AttemptRow, DeliveryRow } from "../webhooks/records.js";
import type { EndpointDeps } from "./deps.js";

export async function listDeliveries(
  deps: Pick<EndpointDeps, "sql">,
  tenantId: string,
  filter: stored.DeliveryFilter,
  page: { beforeId: string | null; limit: number },
): Promise<{ delivery: DeliveryRow; attempts: AttemptRow[] }[]> {
  if (filter.endpointId && !(await findEndpoint(deps.sql, tenantId, filter.endpointId)))
    throw notFound("endpoint", filter.endpointId);
  return stored.listDeliveries(deps.sql, tenantId, filter, page);
}

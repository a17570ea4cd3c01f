// RetryWebhookDelivery: the delivery is scheduled again now, same webhook-id,
// and the notifiers are woken. Answers the delivery as it is then.
import { notFound } from "../../shared/errors.js";
import { findDelivery } from "../webhooks/list-deliveries.js";
import type { AttemptRow, DeliveryRow } from "../webhooks/records.js";
import * as stored from "../webhooks/retry-delivery.js";
import type { EndpointDeps } from "./deps.js";

export async function retryDelivery(
  deps: Pick<EndpointDeps, "sql" | "bus">,
  tenantId: string,
  deliveryId: string,
): Promise<{ delivery: DeliveryRow; attempts: AttemptRow[] }> {
  await stored.retryDelivery(deps.sql, tenantId, deliveryId);
  deps.bus.publish("delivery", deliveryId);
  const found = await findDelivery(deps.sql, tenantId, deliveryId);
  if (!found) throw notFound("delivery", deliveryId);
  return found;
}

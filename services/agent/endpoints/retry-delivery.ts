// RetryWebhookDelivery: the delivery is scheduled again now, same webhook-id,
// and the notifiers are woken. Not while an attempt is in flight, and not to a
// disabled endpoint. Answers the delivery as it is then.
import { Code, type ConnectError } from "@connectrpc/connect";
import { notFound, rpcError } from "../../shared/errors.js";
import { findDelivery } from "../webhooks/list-deliveries.js";
import type { AttemptRow, DeliveryRow } from "../webhooks/records.js";
import * as stored from "../webhooks/retry-delivery.js";
import type { EndpointDeps } from "./deps.js";

export type RetryRefusal = { reason: "DELIVERY_IN_FLIGHT" } | { reason: "ENDPOINT_DISABLED"; endpointId: string };

/** Why a delivery may not be retried now, or null when it may (decided on the locked row). */
export function retryRefusal(delivery: stored.RetryCandidate): RetryRefusal | null {
  if (delivery.state === "SENDING") return { reason: "DELIVERY_IN_FLIGHT" };
  if (delivery.endpointId && delivery.endpointEnabled === false)
    return { reason: "ENDPOINT_DISABLED", endpointId: delivery.endpointId };
  return null;
}

function refusalError(deliveryId: string, refusal: RetryRefusal): ConnectError {
  if (refusal.reason === "DELIVERY_IN_FLIGHT") {
    return rpcError(
      Code.FailedPrecondition,
      "DELIVERY_IN_FLIGHT",
      `delivery ${deliveryId} is being sent now; retry after this attempt ends`,
    );
  }
  return rpcError(
    Code.FailedPrecondition,
    "ENDPOINT_DISABLED",
    `endpoint ${refusal.endpointId} is disabled; enable it with UpdateWebhookEndpoint first`,
    { metadata: { endpoint_id: refusal.endpointId } },
  );
}

export async function retryDelivery(
  deps: Pick<EndpointDeps, "sql" | "bus">,
  tenantId: string,
  deliveryId: string,
): Promise<{ delivery: DeliveryRow; attempts: AttemptRow[] }> {
  const result = await stored.retryDelivery(deps.sql, tenantId, deliveryId, retryRefusal);
  if (result.status === "missing") throw notFound("delivery", deliveryId);
  if (result.status === "refused") throw refusalError(deliveryId, result.refusal);
  deps.bus.publish("delivery", deliveryId);
  const found = await findDelivery(deps.sql, tenantId, deliveryId);
  if (!found) throw notFound("delivery", deliveryId);
  return found;
}

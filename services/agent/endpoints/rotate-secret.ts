// RotateWebhookSecret: a new current secret for an endpoint, or for the
// tenant's per-task webhooks (`endpointId` null; created on first call).
import { notFound } from "../../shared/errors.js";
import * as stored from "../webhooks/rotate-secret.js";
import type { EndpointDeps } from "./deps.js";

export async function rotateSecret(
  deps: Pick<EndpointDeps, "sql">,
  tenantId: string,
  endpointId: string | null,
  graceMs: number,
): Promise<stored.Rotated> {
  const rotated = await stored.rotateSecret(deps.sql, tenantId, endpointId, graceMs);
  if (!rotated) throw notFound("endpoint", endpointId!);
  return rotated;
}

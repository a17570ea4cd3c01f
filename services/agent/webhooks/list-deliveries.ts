import type { Sql } from "../../shared/db/database.js";
import type { AttemptRow, DeliveryRow, DeliveryStateName } from "./records.js";

export interface DeliveryFilter {
  endpointId: string | null;
  taskId: string | null;
  states: DeliveryStateName[];
}

const COLUMNS = (sql: Sql) =>
  sql`tenant_id, delivery_id, endpoint_id, task_id, sequence, event_type, url, state, attempts, next_attempt_at, lease_expires_at, create_time`;

/** A page of deliveries, newest first, strictly older than `beforeId`, each with its attempts. */
export async function listDeliveries(
  sql: Sql,
  tenantId: string,
  filter: DeliveryFilter,
  page: { beforeId: string | null; limit: number },
): Promise<{ delivery: DeliveryRow; attempts: AttemptRow[] }[]> {
  const rows = await sql<DeliveryRow[]>`
    SELECT ${COLUMNS(sql)} FROM webhook_deliveries
    WHERE tenant_id = ${tenantId}
      ${filter.endpointId ? sql`AND endpoint_id = ${filter.endpointId}::uuid` : sql``}
      ${filter.taskId ? sql`AND task_id = ${filter.taskId}::uuid` : sql``}
      ${filter.states.length > 0 ? sql`AND state = ANY(${filter.states}::text[])` : sql``}
      ${page.beforeId ? sql`AND delivery_id < ${page.beforeId}::uuid` : sql``}
    ORDER BY delivery_id DESC
    LIMIT ${page.limit}
  `;
  return withAttempts(sql, tenantId, rows);
}

export async function findDelivery(
  sql: Sql,
  tenantId: string,
  deliveryId: string,
): Promise<{ delivery: DeliveryRow; attempts: AttemptRow[] } | undefined> {
  const rows = await sql<DeliveryRow[]>`
    SELECT ${COLUMNS(sql)} FROM webhook_deliveries WHERE tenant_id = ${tenantId} AND delivery_id = ${deliveryId}
  `;
  return (await withAttempts(sql, tenantId, rows))[0];
}

async function withAttempts(sql: Sql, tenantId: string, rows: DeliveryRow[]) {
  if (rows.length === 0) return [];
  const attempts = await sql<AttemptRow[]>`
    SELECT delivery_id, attempt, time, status_code, latency_ms, error, response_body FROM webhook_attempts
    WHERE tenant_id = ${tenantId} AND delivery_id = ANY(${rows.map((r) => r.delivery_id)}::uuid[])
    ORDER BY delivery_id, attempt
  `;
  const byDelivery = new Map<string, AttemptRow[]>();
  for (const a of attempts) {
    const list = byDelivery.get(a.delivery_id) ?? [];
    list.push(a);
    byDelivery.set(a.delivery_id, list);
  }
  return rows.map((delivery) => ({ delivery, attempts: byDelivery.get(delivery.delivery_id) ?? [] }));
}

// The outbox write: one statement that inserts a delivery per (event, URL) for
// the task's own webhook and for every enabled tenant endpoint subscribed to
// the event's type. Runs inside the task change's transaction.
import type { JsonObject } from "@bufbuild/protobuf";
import type { Sql, Tx } from "../../shared/db/database.js";

export interface OutboxEvent {
  sequence: number;
  type: string;
  payload: JsonObject;
}

export interface TaskWebhookTarget {
  url: string;
  target: string;
  /** The types of `events` this webhook wants. */
  types: string[];
}

/**
 * The delivery id, which is also the `webhook-id` header, is derived from
 * (tenant, task, event sequence, endpoint or the task's own webhook), not
 * drawn at random: a delivery written again for the same event (after a
 * database failover lost the commit that first wrote it, and the task's
 * outcome was applied again) carries the same id, so receivers drop it, and
 * ON CONFLICT keeps one row. It is shaped like a UUIDv8 that still sorts
 * roughly by time: the task id's 48-bit creation time, then 28 bits of the
 * sequence, then 44 bits of an md5 of the key.
 */
function deliveryId(tx: Sql | Tx, tenantId: string, taskId: string, endpoint: ReturnType<Sql["unsafe"]>) {
  return tx`(
    substr(replace(${taskId}::uuid::text, '-', ''), 1, 12) || '8'
    || lpad(to_hex((ev.sequence >> 16) & 4095), 3, '0') || '8' || lpad(to_hex(ev.sequence & 65535), 4, '0')
    || substr(md5(${tenantId} || '/' || ${taskId}::uuid::text || '/' || ev.sequence::text || '/' || ${endpoint}), 1, 11)
  )::uuid`;
}

/** Returns the number of deliveries written. */
export async function enqueueDeliveries(
  tx: Sql | Tx,
  tenantId: string,
  taskId: string,
  events: readonly OutboxEvent[],
  taskWebhook: TaskWebhookTarget | null,
): Promise<number> {
  const types = [...new Set(events.map((e) => e.type))];
  const rows = await tx`
    WITH ev AS (
      SELECT * FROM jsonb_to_recordset(${tx.json(events as never)}::jsonb) AS e(sequence bigint, type text, payload jsonb)
    ), ep AS (
      SELECT endpoint_id, url, target, event_types FROM webhook_endpoints
      WHERE tenant_id = ${tenantId} AND enabled AND event_types && ${types}::text[]
    )
    INSERT INTO webhook_deliveries (tenant_id, delivery_id, endpoint_id, task_id, sequence, event_type, url, target, payload)
    SELECT ${tenantId}, ${deliveryId(tx, tenantId, taskId, tx.unsafe("ep.endpoint_id::text"))}, ep.endpoint_id, ${taskId}::uuid, ev.sequence, ev.type, ep.url, ep.target, ev.payload
    FROM ev JOIN ep ON ev.type = ANY (ep.event_types)
    UNION ALL
    SELECT ${tenantId}, ${deliveryId(tx, tenantId, taskId, tx.unsafe("'task'"))}, NULL, ${taskId}::uuid, ev.sequence, ev.type, ${taskWebhook?.url ?? ""}, ${taskWebhook?.target ?? ""}, ev.payload
    FROM ev WHERE ev.type = ANY (${taskWebhook?.types ?? []}::text[])
    ON CONFLICT (tenant_id, delivery_id) DO NOTHING
    RETURNING 1
  `;
  return rows.length;
}

/** The event types any enabled endpoint of the tenant subscribes to. */
export async function subscribedTypes(sql: Sql | Tx, tenantId: string): Promise<Set<string>> {
  const rows = await sql<{ type: string }[]>`
    SELECT DISTINCT unnest(event_types) AS type FROM webhook_endpoints WHERE tenant_id = ${tenantId} AND enabled
  `;
  return new Set(rows.map((r) => r.type));
}

// The outbox write: one statement that inserts a delivery per (event, URL) for
// the task's own webhook and for every enabled tenant endpoint subscribed to
// the event's type. Runs inside the task change's transaction.
import type { JsonObject } from "@bufbuild/protobuf";
import type { Sql, Tx } from "../db/database.js";

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
    SELECT ${tenantId}, agentd_uuid_v7(), ep.endpoint_id, ${taskId}::uuid, ev.sequence, ev.type, ep.url, ep.target, ev.payload
    FROM ev JOIN ep ON ev.type = ANY (ep.event_types)
    UNION ALL
    SELECT ${tenantId}, agentd_uuid_v7(), NULL, ${taskId}::uuid, ev.sequence, ev.type, ${taskWebhook?.url ?? ""}, ${taskWebhook?.target ?? ""}, ev.payload
    FROM ev WHERE ev.type = ANY (${taskWebhook?.types ?? []}::text[])
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

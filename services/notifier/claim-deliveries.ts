// Claims due deliveries for this notifier: FOR UPDATE SKIP LOCKED, so replicas
// never claim the same row, and a lease (owner, expiry, lease_id) so a killed
// notifier's deliveries are picked up again once it expires. The claim counts
// no attempt: `startAttempts` does, right before the HTTP request, so a
// notifier that dies holding claims it never started charges them nothing.
//
// Fairness lives in the query: destinations already at their concurrency limit
// in this process are skipped, and each destination gets at most its free
// slots, so a backlog for one slow receiver cannot fill the batch while others
// wait.
import type { JsonObject } from "@bufbuild/protobuf";
import type { Sql } from "../shared/db/database.js";

export interface ClaimedDelivery {
  /** The claimed row version's ctid: the row stays put while the lease holds, so the outcome finds it without a key lookup. */
  row_id: string;
  tenant_id: string;
  delivery_id: string;
  endpoint_id: string | null;
  task_id: string;
  sequence: number | string;
  event_type: string;
  url: string;
  target: string;
  payload: JsonObject;
  /** The number (1-based) of the attempt this claim is for, once started. */
  attempts: number;
  retries: boolean;
  lease_id: string;
  create_time: Date;
  /** Active signing secrets, newest first. */
  secrets: string[];
  /** The task's trace context (tracing on), so the attempt's span joins the task's trace. */
  trace_parent: string | null;
}

export interface ClaimRequest {
  owner: string;
  leaseMs: number;
  /** Deliveries to claim at most. */
  limit: number;
  /** Concurrency per destination. */
  perTarget: number;
  /** Destinations this process is already sending to, with their free slots (0 = full). */
  busy: ReadonlyMap<string, number>;
}

export async function claimDeliveries(sql: Sql, req: ClaimRequest): Promise<ClaimedDelivery[]> {
  if (req.limit <= 0) return [];
  const full = [...req.busy].filter(([, free]) => free <= 0).map(([target]) => target);
  const partial = [...req.busy].filter(([, free]) => free > 0);
  // Enough candidates that rows locked by other notifiers rarely leave the batch short.
  const scanLimit = Math.max(req.limit * 4, 100);
  // Rows are addressed by ctid between the steps: a TID scan whatever the planner
  // thinks of this small, fast-changing table (joins back to it by key were
  // planned as hash joins over every pending row, and grew with the backlog).
  return sql<ClaimedDelivery[]>`
    WITH scan AS (
      SELECT ctid AS row_id, target, next_attempt_at
      FROM webhook_deliveries
      WHERE state = 'PENDING' AND next_attempt_at <= now() AND target <> ALL (${full}::text[])
      ORDER BY next_attempt_at
      LIMIT ${scanLimit}
    ), ranked AS (
      SELECT scan.*, row_number() OVER (PARTITION BY target ORDER BY next_attempt_at) AS rank FROM scan
    ), chosen AS (
      SELECT r.row_id FROM ranked r
      LEFT JOIN unnest(${partial.map(([t]) => t)}::text[], ${partial.map(([, f]) => f)}::int[]) AS b(target, free)
        ON b.target = r.target
      WHERE r.rank <= coalesce(b.free, ${req.perTarget})
    ), picked AS (
      -- Locked rows are skipped; a row claimed meanwhile by another notifier fails the recheck of state.
      SELECT ctid AS row_id FROM webhook_deliveries
      WHERE ctid = ANY (ARRAY(SELECT row_id FROM chosen)) AND state = 'PENDING' AND next_attempt_at <= now()
      ORDER BY next_attempt_at
      LIMIT ${req.limit}
      FOR UPDATE SKIP LOCKED
    )
    UPDATE webhook_deliveries d SET
      state = 'SENDING',
      started_at = NULL,
      lease_owner = ${req.owner},
      lease_id = gen_random_uuid(),
      lease_expires_at = now() + ${req.leaseMs} * interval '1 millisecond',
      update_time = now()
    WHERE d.ctid = ANY (ARRAY(SELECT row_id FROM picked))
    RETURNING d.ctid::text AS row_id, d.tenant_id, d.delivery_id, d.endpoint_id, d.task_id, d.sequence, d.event_type, d.url, d.target,
      d.payload, d.attempts + 1 AS attempts, d.retries, d.lease_id, d.create_time,
      ARRAY(
        SELECT s.secret FROM webhook_secrets s
        WHERE s.tenant_id = d.tenant_id AND s.endpoint_id IS NOT DISTINCT FROM d.endpoint_id
          AND (s.expire_time IS NULL OR s.expire_time > now())
        ORDER BY s.create_time DESC
      ) AS secrets,
      (SELECT t.trace_parent FROM tasks t WHERE t.tenant_id = d.tenant_id AND t.task_id = d.task_id) AS trace_parent
  `;
}

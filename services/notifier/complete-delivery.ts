// Records an attempt's outcome: the delivery's next state, the attempt row and
// the endpoint's health — fenced by the claim's lease_id, so a notifier that
// lost its lease cannot overwrite what the next claimant wrote (its attempt is
// still recorded). An endpoint answering 410 Gone, or failing without a
// success for `disableAfterMs`, is disabled and its pending deliveries become
// dead letters.
import type { Sql, Tx } from "../shared/db/database.js";
import type { ClaimedDelivery } from "./claim-deliveries.js";
import type { Next } from "./retry-schedule.js";

interface AttemptRecord {
  attempt: number;
  time: Date;
  status: number;
  latencyMs: number;
  error: string;
  responseBody: string;
}

export interface Completion {
  delivery: Pick<ClaimedDelivery, "row_id" | "tenant_id" | "delivery_id" | "endpoint_id" | "lease_id">;
  attempt: AttemptRecord;
  next: Next;
  /** Whether this failure counts against the endpoint's health (a lost lease does not). */
  endpointFault: boolean;
  disableAfterMs: number;
}

export type CompletionResult =
  | { status: "recorded"; state: Next["state"]; endpointDisabled?: string }
  | { status: "fenced" };

function recordAttempt(q: Sql | Tx, c: Completion) {
  const a = c.attempt;
  return q`
    INSERT INTO webhook_attempts (tenant_id, delivery_id, attempt, time, status_code, latency_ms, error, response_body)
    VALUES (${c.delivery.tenant_id}, ${c.delivery.delivery_id}, ${a.attempt}, ${a.time}, ${a.status}, ${a.latencyMs}, ${a.error}, ${a.responseBody})
    ON CONFLICT (tenant_id, delivery_id, attempt) DO UPDATE SET
      time = excluded.time, status_code = excluded.status_code, latency_ms = excluded.latency_ms,
      error = excluded.error, response_body = excluded.response_body
  `;
}

/**
 * Successes, many at once (the common case, so it is batched): each delivery
 * SUCCEEDED, its attempt row, its endpoint marked healthy — one statement.
 * Returns the ids that were fenced (their lease was lost); their attempts are
 * recorded all the same.
 */
export async function completeSuccesses(sql: Sql, list: readonly Completion[]): Promise<Set<string>> {
  if (list.length === 0) return new Set();
  const col = <T>(f: (c: Completion) => T) => list.map(f);
  const done = await sql<{ delivery_id: string }[]>`
    WITH input AS (
      SELECT * FROM unnest(
        ${col((c) => c.delivery.tenant_id)}::text[], ${col((c) => c.delivery.delivery_id)}::uuid[],
        ${col((c) => c.attempt.attempt)}::int[], ${col((c) => c.attempt.time.toISOString())}::timestamptz[],
        ${col((c) => c.attempt.status)}::int[], ${col((c) => c.attempt.latencyMs)}::int[], ${col((c) => c.attempt.responseBody)}::text[]
      ) AS i(tenant_id, delivery_id, attempt, time, status_code, latency_ms, response_body)
    ), locked AS (
      -- By ctid (a TID scan, however small the table looks to the planner), fenced by the claims' lease ids,
      -- and locked in key order, the order other many-row writers (DeleteWebhookEndpoint) use: no deadlock.
      SELECT ctid AS row_id FROM webhook_deliveries
      WHERE ctid = ANY (${col((c) => c.delivery.row_id)}::tid[]) AND lease_id = ANY (${col((c) => c.delivery.lease_id)}::uuid[])
        AND state = 'SENDING'
      ORDER BY tenant_id, delivery_id
      FOR UPDATE
    ), done AS (
      UPDATE webhook_deliveries d SET state = 'SUCCEEDED', lease_owner = NULL, lease_id = NULL, lease_expires_at = NULL, update_time = now()
      WHERE d.ctid = ANY (ARRAY(SELECT row_id FROM locked))
      RETURNING d.tenant_id, d.delivery_id, d.endpoint_id
    ), logged AS (
      INSERT INTO webhook_attempts (tenant_id, delivery_id, attempt, time, status_code, latency_ms, error, response_body)
      SELECT tenant_id, delivery_id, attempt, time, status_code, latency_ms, '', response_body FROM input
      ON CONFLICT (tenant_id, delivery_id, attempt) DO UPDATE SET
        time = excluded.time, status_code = excluded.status_code, latency_ms = excluded.latency_ms,
        error = excluded.error, response_body = excluded.response_body
    ), healthy AS (
      UPDATE webhook_endpoints e SET failing_since = NULL
      FROM (SELECT DISTINCT tenant_id, endpoint_id FROM done WHERE endpoint_id IS NOT NULL) h
      WHERE e.tenant_id = h.tenant_id AND e.endpoint_id = h.endpoint_id AND e.failing_since IS NOT NULL
    )
    SELECT delivery_id FROM done
  `;
  const recorded = new Set(done.map((r) => r.delivery_id));
  return new Set(list.map((c) => c.delivery.delivery_id).filter((id) => !recorded.has(id)));
}

async function completeFailure(sql: Sql, c: Completion): Promise<CompletionResult> {
  const d = c.delivery;
  const next = c.next;
  return sql.begin(async (tx): Promise<CompletionResult> => {
    const delayMs = next.state === "PENDING" ? next.delayMs : 0;
    const updated = await tx`
      UPDATE webhook_deliveries SET
        state = ${next.state},
        next_attempt_at = now() + ${delayMs} * interval '1 millisecond',
        lease_owner = NULL, lease_id = NULL, lease_expires_at = NULL, update_time = now()
      WHERE tenant_id = ${d.tenant_id} AND delivery_id = ${d.delivery_id} AND lease_id = ${d.lease_id} AND state = 'SENDING'
      RETURNING 1
    `;
    await recordAttempt(tx, c);
    if (updated.length === 0) return { status: "fenced" };
    if (!d.endpoint_id || !c.endpointFault) return { status: "recorded", state: next.state };

    const gone = next.state === "FAILED" && next.gone;
    // failing_since is the value before this update: NULL means the failure streak starts now.
    const [endpoint] = await tx<{ enabled: boolean; disabled_reason: string }[]>`
      UPDATE webhook_endpoints e SET
        failing_since = coalesce(e.failing_since, now()),
        enabled = NOT (${gone} OR w.too_long),
        disabled_reason = CASE
          WHEN ${gone} THEN 'answered 410 Gone'
          WHEN w.too_long THEN 'every attempt failed since ' || to_char(e.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
          ELSE e.disabled_reason END,
        update_time = CASE WHEN ${gone} OR w.too_long THEN now() ELSE e.update_time END
      FROM (
        SELECT coalesce(failing_since < now() - ${c.disableAfterMs} * interval '1 millisecond', false) AS too_long
        FROM webhook_endpoints WHERE tenant_id = ${d.tenant_id} AND endpoint_id = ${d.endpoint_id}
      ) w
      WHERE e.tenant_id = ${d.tenant_id} AND e.endpoint_id = ${d.endpoint_id} AND e.enabled
      RETURNING e.enabled, e.disabled_reason
    `;
    if (!endpoint || endpoint.enabled) return { status: "recorded", state: next.state };
    // Disabled now: what was waiting for it becomes dead letters, this delivery included.
    await tx`
      UPDATE webhook_deliveries SET state = 'FAILED', update_time = now()
      WHERE tenant_id = ${d.tenant_id} AND endpoint_id = ${d.endpoint_id} AND state = 'PENDING'
    `;
    return { status: "recorded", state: "FAILED", endpointDisabled: endpoint.disabled_reason };
  });
}

export async function completeDelivery(sql: Sql, c: Completion): Promise<CompletionResult> {
  if (c.next.state !== "SUCCEEDED") return completeFailure(sql, c);
  const fenced = await completeSuccesses(sql, [c]);
  return fenced.size > 0 ? { status: "fenced" } : { status: "recorded", state: "SUCCEEDED" };
}

/** Hands deliveries back unsent (shutdown, or a claim that waited too long): an attempt
 * already started is undone; one never started had counted nothing. */
export async function releaseDeliveries(
  sql: Sql,
  claims: readonly Pick<ClaimedDelivery, "tenant_id" | "delivery_id" | "lease_id">[],
): Promise<void> {
  if (claims.length === 0) return;
  await sql`
    UPDATE webhook_deliveries d SET
      state = 'PENDING', attempts = d.attempts - (d.started_at IS NOT NULL)::int, started_at = NULL, next_attempt_at = now(),
      lease_owner = NULL, lease_id = NULL, lease_expires_at = NULL, update_time = now()
    FROM unnest(${claims.map((c) => c.tenant_id)}::text[], ${claims.map((c) => c.delivery_id)}::uuid[], ${claims.map((c) => c.lease_id)}::uuid[])
      AS r(tenant_id, delivery_id, lease_id)
    WHERE d.tenant_id = r.tenant_id AND d.delivery_id = r.delivery_id AND d.lease_id = r.lease_id AND d.state = 'SENDING'
  `;
}

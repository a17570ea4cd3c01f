// Claims and sweep picks, one exported function per SQL operation. A claim of
// a batch is one statement: pick claimable QUEUED tasks (SKIP LOCKED, so
// replicas share the work instead of queueing on each other), start their
// attempt under a new lease, append each one's state_change event and return
// both. Before, it was a SELECT … FOR UPDATE and one write per task inside a
// transaction: 3 + k round trips under row locks.
import type { Queryable } from "../../shared/db/database.js";
import type { StateChangeData, StoredEvent } from "../model/change.js";
import type { TaskRow } from "../model/task.js";

/** Who claims, and for how long the lease holds before it must be renewed. */
export interface ClaimTerms {
  owner: string;
  leaseMs: number;
}

export interface ClaimedTask {
  task: TaskRow;
  /** The claim's one event: the state_change to RUNNING. */
  events: StoredEvent[];
}

/** `${ts}` as JavaScript's `Date.toISOString()` writes it (the proto3 JSON timestamp form). */
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * The state_change snapshot of a claimed task, as `stateChangeSnapshot` in
 * task-record.ts computes it for a RUNNING task past its first event: no
 * input, output, artifacts, error or input request; progress, labels,
 * request id and end time only when set. test/tasks checks the two agree.
 */
const RUNNING_SNAPSHOT = `
  jsonb_build_object(
    'id', c.task_id, 'agent', c.agent, 'agentVersion', c.agent_version, 'state', 'TASK_STATE_RUNNING',
    'attempt', c.attempt, 'maxAttempts', c.max_attempts, 'lastSequence', c.last_sequence::text,
    'createTime', ${iso("c.create_time")}, 'updateTime', ${iso("c.update_time")},
    'timeout', trim_scale(c.timeout_ms::numeric / 1000)::text || 's',
    'startTime', ${iso("c.start_time")}
  )
  || CASE WHEN jsonb_typeof(c.progress) IS DISTINCT FROM 'null' AND c.progress IS NOT NULL
       THEN jsonb_build_object('progress', c.progress) ELSE '{}'::jsonb END
  || CASE WHEN c.labels <> '{}'::jsonb THEN jsonb_build_object('labels', c.labels) ELSE '{}'::jsonb END
  || CASE WHEN c.request_id IS NOT NULL THEN jsonb_build_object('requestId', c.request_id) ELSE '{}'::jsonb END
  || CASE WHEN c.end_time IS NOT NULL THEN jsonb_build_object('endTime', ${iso("c.end_time")}) ELSE '{}'::jsonb END
`;

/**
 * Claims up to `limit` claimable QUEUED tasks for `terms.owner`, as the `claim`
 * transition does (RUNNING, attempt at least 1, start time kept, a new lease),
 * in one statement. `now` is the application's clock, as for every other write.
 * With `quietWhere` (a sink's `quietClaimWhere`), only the picked tasks it holds for are
 * claimed; `loud` counts the others (picked, left QUEUED for a claim in the sink's transaction).
 * With `claimLoud` as well, every picked task is claimed and `loud` still counts those it fails.
 */
export async function claimTasks(
  q: Queryable,
  limit: number,
  terms: ClaimTerms,
  opts: { now: Date; actor: string | null; quietWhere?: string; claimLoud?: boolean },
): Promise<{ claimed: ClaimedTask[]; loud: number }> {
  const { now, actor } = opts;
  const expires = new Date(now.getTime() + terms.leaseMs);
  const quiet = q.unsafe(opts.quietWhere ? `(${opts.quietWhere})` : "true");
  const claimable = q.unsafe(opts.claimLoud ? "true" : "picked.quiet");
  const rows = await q<(TaskRow & { event_data: StateChangeData | null; loud: number })[]>`
    WITH picked AS (
      SELECT t.tenant_id, t.task_id, ${quiet} AS quiet FROM tasks t
      WHERE t.state = 'QUEUED' AND t.run_after <= now()
      ORDER BY t.run_after LIMIT ${limit} FOR UPDATE OF t SKIP LOCKED
    ), claimed AS (
      UPDATE tasks t SET
        state = 'RUNNING',
        attempt = greatest(t.attempt, 1),
        start_time = coalesce(t.start_time, ${now}),
        lease_owner = ${terms.owner},
        lease_id = gen_random_uuid(),
        lease_expires_at = ${expires},
        last_sequence = t.last_sequence + 1,
        update_time = ${now}
      FROM picked WHERE t.tenant_id = picked.tenant_id AND t.task_id = picked.task_id AND ${claimable}
      RETURNING t.*
    ), appended AS (
      INSERT INTO task_events (tenant_id, task_id, sequence, time, kind, data, actor)
      SELECT c.tenant_id, c.task_id, c.last_sequence, ${now}, 'stateChange',
        jsonb_build_object('state', 'TASK_STATE_RUNNING', 'task', ${q.unsafe(RUNNING_SNAPSHOT)}), ${actor}
      FROM claimed c
      RETURNING tenant_id, task_id, data
    )
    SELECT claimed.*, appended.data AS event_data, s.loud
    FROM (SELECT (count(*) FILTER (WHERE NOT picked.quiet))::int AS loud FROM picked) s
    LEFT JOIN (claimed JOIN appended ON appended.tenant_id = claimed.tenant_id AND appended.task_id = claimed.task_id)
      ON true
    ORDER BY claimed.run_after
  `;
  const claimed: ClaimedTask[] = [];
  for (const { event_data, loud: _loud, ...task } of rows) {
    if (event_data === null) continue; // the one row when nothing was claimed
    claimed.push({
      task: task as TaskRow,
      events: [{ sequence: Number(task.last_sequence), time: now, kind: "stateChange", data: event_data, actor }],
    });
  }
  return { claimed, loud: rows[0]?.loud ?? 0 };
}

/** Locks up to `limit` tasks whose lease expired (their runner stopped renewing it). */
export function selectExpiredLeases(q: Queryable, limit: number): Promise<TaskRow[]> {
  return q<TaskRow[]>`
    SELECT * FROM tasks WHERE lease_owner IS NOT NULL AND lease_expires_at < now()
    ORDER BY lease_expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED
  `;
}

/** Locks up to `limit` INPUT_REQUIRED tasks whose input request expired. */
export function selectExpiredInputs(q: Queryable, limit: number): Promise<TaskRow[]> {
  return q<TaskRow[]>`
    SELECT * FROM tasks
    WHERE state = 'INPUT_REQUIRED' AND input_expires_at IS NOT NULL AND input_expires_at < now()
    ORDER BY input_expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED
  `;
}

/**
 * What there is to do, in one cheap statement: lets an idle process poll with one statement, not a
 * transaction per queue. The sweeps' answers are "in how many ms the next lease / input request
 * expires" (null: none held), measured by the database's clock, so a cached peek stays exact.
 */
export interface PendingWork {
  claimable: boolean;
  leaseExpiresInMs: number | null;
  inputExpiresInMs: number | null;
}

export async function peekWork(q: Queryable): Promise<PendingWork> {
  const [row] = await q<{ claimable: boolean; lease_ms: number | null; input_ms: number | null }[]>`
    SELECT
      EXISTS (SELECT 1 FROM tasks WHERE state = 'QUEUED' AND run_after <= now()) AS claimable,
      EXTRACT(EPOCH FROM (SELECT min(lease_expires_at) FROM tasks WHERE lease_owner IS NOT NULL) - now()) * 1000 AS lease_ms,
      EXTRACT(EPOCH FROM (
        SELECT min(input_expires_at) FROM tasks WHERE state = 'INPUT_REQUIRED' AND input_expires_at IS NOT NULL
      ) - now()) * 1000 AS input_ms
  `;
  const ms = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    claimable: Boolean(row?.claimable),
    leaseExpiresInMs: ms(row?.lease_ms),
    inputExpiresInMs: ms(row?.input_ms),
  };
}

/**
 * Spares an idle process its transactions: while the last claim found nothing, a
 * claim first peeks (one statement, which also answers for the sweeps); a sweep
 * uses a peek younger than `freshMs` or makes one, and opens its transaction only
 * when there is something to sweep. A busy process claims without peeking.
 */
export function createWorkPeek(q: Queryable, freshMs: number) {
  let idle = true;
  let last: { at: number; work: PendingWork } | undefined;
  async function peek(): Promise<PendingWork> {
    const at = Date.now();
    const work = await peekWork(q);
    last = { at, work };
    return work;
  }
  /** Whether something of this kind has expired by now, by a peek's answer taken at `at`. */
  const due = (at: number, expiresInMs: number | null) => expiresInMs !== null && at + expiresInMs <= Date.now();
  const inMsOf = (work: PendingWork, kind: "expiredLeases" | "expiredInputs") =>
    kind === "expiredLeases" ? work.leaseExpiresInMs : work.inputExpiresInMs;
  return {
    mayClaim: async (): Promise<boolean> => !idle || (await peek()).claimable,
    claimed(count: number): void {
      idle = count === 0;
    },
    /** This process just wrote a lease or an input request's expiry: the cached answer may be stale. */
    forget(): void {
      last = undefined;
    },
    async maySweep(kind: "expiredLeases" | "expiredInputs"): Promise<boolean> {
      // A fresh peek answers unless what it saw has expired since; a lease or request created
      // after it is seen by the next peek, at most `freshMs` later.
      if (last && Date.now() - last.at < freshMs && !due(last.at, inMsOf(last.work, kind))) return false;
      const at = Date.now();
      return due(at, inMsOf(await peek(), kind));
    },
  };
}

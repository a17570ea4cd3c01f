// Runners' changes to the tasks they hold, any number of tasks in one statement (the group
// commit's write for `TaskWriter.changeHeld`, store/group-commit.ts). Each change applies only
// if its task has not moved on since the runner's copy (same lease, still RUNNING, same last
// event); one that does not apply is reported, and its caller falls back to a locked change.
// The patch columns are the writer's `TaskPatch`: a column is set only when the change names it.
import type { Sql } from "../../shared/db/database.js";
import type { StoredEvent, TaskPatch } from "../model/change.js";
import type { TaskRow } from "../model/task.js";

export interface HeldChange {
  current: TaskRow;
  next: TaskRow;
  patch: TaskPatch;
  events: StoredEvent[];
  leaseId: string;
}

/** Applies the changes; true for each one applied, false for one whose task moved on. */
export async function appendHeld(sql: Sql, batch: HeldChange[]): Promise<boolean[]> {
  const changes = batch.map(({ current, next, patch, leaseId }) => ({
    tenant_id: current.tenant_id,
    task_id: current.task_id,
    lease_id: leaseId,
    expected: Number(current.last_sequence),
    last_sequence: Number(next.last_sequence),
    update_time: next.update_time.toISOString(),
    patch: patchJson(patch),
  }));
  const events = batch.flatMap(({ current, events }) =>
    events.map((e) => ({
      tenant_id: current.tenant_id,
      task_id: current.task_id,
      sequence: e.sequence,
      time: e.time.toISOString(),
      kind: e.kind,
      data: e.data,
      actor: e.actor ?? null,
    })),
  );
  const rows = await sql<{ tenant_id: string; task_id: string }[]>`
    WITH c AS (
      SELECT * FROM jsonb_to_recordset(${sql.json(changes as never)}::jsonb) AS c(
        tenant_id text, task_id uuid, lease_id uuid, expected bigint, last_sequence bigint,
        update_time timestamptz, patch jsonb)
      -- Changes nothing, but tells the planner how many rows come: it guesses 100 for the function,
      -- and for 100 key lookups a scan of every RUNNING task looked cheaper, so each batch read the
      -- whole table (a cost that grew with it). With the count it looks each task up by its key.
      LIMIT ${changes.length}
    ), changed AS (
      UPDATE tasks AS t SET
        last_sequence = c.last_sequence,
        update_time = c.update_time,
        state = CASE WHEN c.patch ? 'state' THEN c.patch->>'state' ELSE t.state END,
        attempt = CASE WHEN c.patch ? 'attempt' THEN (c.patch->>'attempt')::integer ELSE t.attempt END,
        start_time = CASE WHEN c.patch ? 'start_time' THEN (c.patch->>'start_time')::timestamptz ELSE t.start_time END,
        end_time = CASE WHEN c.patch ? 'end_time' THEN (c.patch->>'end_time')::timestamptz ELSE t.end_time END,
        run_after = CASE WHEN c.patch ? 'run_after' THEN (c.patch->>'run_after')::timestamptz ELSE t.run_after END,
        lease_owner = CASE WHEN c.patch ? 'lease_owner' THEN c.patch->>'lease_owner' ELSE t.lease_owner END,
        lease_id = CASE WHEN c.patch ? 'lease_id' THEN (c.patch->>'lease_id')::uuid ELSE t.lease_id END,
        lease_expires_at = CASE WHEN c.patch ? 'lease_expires_at'
          THEN (c.patch->>'lease_expires_at')::timestamptz ELSE t.lease_expires_at END,
        input_expires_at = CASE WHEN c.patch ? 'input_expires_at'
          THEN (c.patch->>'input_expires_at')::timestamptz ELSE t.input_expires_at END,
        output = CASE WHEN c.patch ? 'output' THEN NULLIF(c.patch->'output', 'null') ELSE t.output END,
        error = CASE WHEN c.patch ? 'error' THEN NULLIF(c.patch->'error', 'null') ELSE t.error END,
        progress = CASE WHEN c.patch ? 'progress' THEN NULLIF(c.patch->'progress', 'null') ELSE t.progress END,
        input_request = CASE WHEN c.patch ? 'input_request'
          THEN NULLIF(c.patch->'input_request', 'null') ELSE t.input_request END,
        artifacts = CASE WHEN c.patch ? 'artifacts' THEN c.patch->'artifacts' ELSE t.artifacts END,
        checkpoint = CASE WHEN c.patch ? 'checkpoint' THEN NULLIF(c.patch->'checkpoint', 'null') ELSE t.checkpoint END,
        pending_input = CASE WHEN c.patch ? 'pending_input'
          THEN NULLIF(c.patch->'pending_input', 'null') ELSE t.pending_input END,
        input_answer_ids = CASE WHEN c.patch ? 'input_answer_ids'
          THEN c.patch->'input_answer_ids' ELSE t.input_answer_ids END
      FROM c
      WHERE t.tenant_id = c.tenant_id AND t.task_id = c.task_id AND t.lease_id = c.lease_id
        AND t.state = 'RUNNING' AND t.last_sequence = c.expected
      RETURNING t.tenant_id, t.task_id
    ), appended AS (
      INSERT INTO task_events (tenant_id, task_id, sequence, time, kind, data, actor)
      SELECT changed.tenant_id, changed.task_id, e.sequence, e.time, e.kind, e.data, e.actor
      FROM changed
      JOIN jsonb_to_recordset(${sql.json(events as never)}::jsonb)
        AS e(tenant_id text, task_id uuid, sequence bigint, time timestamptz, kind text, data jsonb, actor text)
        ON e.tenant_id = changed.tenant_id AND e.task_id = changed.task_id
      RETURNING 1
    )
    SELECT tenant_id, task_id FROM changed
  `;
  const applied = new Set(rows.map((r) => `${r.tenant_id}/${r.task_id}`));
  return batch.map(({ current }) => applied.has(`${current.tenant_id}/${current.task_id}`));
}

/** The patch as JSON: only the columns it sets (an undefined value sets nothing), dates as ISO text. */
function patchJson(patch: TaskPatch): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    json[column] = value instanceof Date ? value.toISOString() : value;
  }
  return json;
}

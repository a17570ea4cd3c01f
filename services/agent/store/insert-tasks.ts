// New tasks and their first events, any number in one statement (the group commit's write,
// store/group-commit.ts). A task whose (tenant, request_id) exists already is skipped, not an
// error: its caller looks the existing one up.
import type { Sql, Tx } from "../../shared/db/database.js";
import type { StoredEvent, TaskEventSink } from "../model/change.js";
import type { TaskRow } from "../model/task.js";

export interface NewTaskRows {
  task: TaskRow;
  events: StoredEvent[];
}

/** Inserts the tasks and their events; true for each one inserted, false for a request_id taken. */
export async function insertTasks(sql: Sql, sink: TaskEventSink | undefined, batch: NewTaskRows[]): Promise<boolean[]> {
  const statement = (q: Sql | Tx) => q<{ task_id: string }[]>`
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(${sql.json(batch.map(({ task }, position) => taskRecord(task, position)) as never)}::jsonb) AS t(
        tenant_id text, task_id uuid, agent text, agent_version text, state text, input jsonb, labels jsonb,
        artifacts jsonb, webhook jsonb, request_id text, request_fingerprint text, attempt integer,
        max_attempts integer, timeout_ms bigint, last_sequence bigint, create_time timestamptz,
        start_time timestamptz, update_time timestamptz, run_after timestamptz, lease_owner text,
        lease_id uuid, lease_expires_at timestamptz, trace_parent text, position integer)
    ), created AS (
      INSERT INTO tasks (tenant_id, task_id, agent, agent_version, state, input, labels, artifacts, webhook,
        request_id, request_fingerprint, attempt, max_attempts, timeout_ms, last_sequence, create_time,
        start_time, update_time, run_after, lease_owner, lease_id, lease_expires_at, trace_parent)
      SELECT tenant_id, task_id, agent, agent_version, state, input, labels, artifacts, webhook,
        request_id, request_fingerprint, attempt, max_attempts, timeout_ms, last_sequence, create_time,
        start_time, update_time, run_after, lease_owner, lease_id, lease_expires_at, trace_parent
      FROM input ORDER BY position
      ON CONFLICT (tenant_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
      RETURNING tenant_id, task_id
    ), appended AS (
      INSERT INTO task_events (tenant_id, task_id, sequence, time, kind, data, actor)
      SELECT created.tenant_id, created.task_id, e.sequence, e.time, e.kind, e.data, e.actor
      FROM created
      JOIN jsonb_to_recordset(${sql.json(eventRecords(batch) as never)}::jsonb)
        AS e(tenant_id text, task_id uuid, sequence bigint, time timestamptz, kind text, data jsonb, actor text)
        ON e.tenant_id = created.tenant_id AND e.task_id = created.task_id
      RETURNING 1
    )
    SELECT task_id FROM created
  `;
  const inserted = (rows: { task_id: string }[]) => {
    const ids = new Set(rows.map((r) => r.task_id));
    return batch.map(({ task }) => ids.has(task.task_id));
  };
  if (!sink || !batch.some(({ task, events }) => sink.wants(task, events))) return inserted(await statement(sql));
  // The outbox's rows commit with the tasks they are about.
  return sql.begin(async (tx) => {
    const done = inserted(await statement(tx));
    for (const [i, { task, events }] of batch.entries()) {
      if (done[i] && sink.wants(task, events)) await sink.append(tx, task, events);
    }
    return done;
  });
}

function taskRecord(task: TaskRow, position: number) {
  return {
    tenant_id: task.tenant_id,
    task_id: task.task_id,
    agent: task.agent,
    agent_version: task.agent_version,
    state: task.state,
    input: task.input,
    labels: task.labels,
    artifacts: task.artifacts,
    webhook: task.webhook,
    request_id: task.request_id,
    request_fingerprint: task.request_fingerprint,
    attempt: task.attempt,
    max_attempts: task.max_attempts,
    timeout_ms: Number(task.timeout_ms),
    last_sequence: Number(task.last_sequence),
    create_time: task.create_time.toISOString(),
    start_time: task.start_time?.toISOString() ?? null,
    update_time: task.update_time.toISOString(),
    run_after: task.run_after.toISOString(),
    lease_owner: task.lease_owner,
    lease_id: task.lease_id,
    lease_expires_at: task.lease_expires_at?.toISOString() ?? null,
    trace_parent: task.trace_parent ?? null,
    position,
  };
}

function eventRecords(batch: NewTaskRows[]) {
  return batch.flatMap(({ task, events }) =>
    events.map((e) => ({
      tenant_id: task.tenant_id,
      task_id: task.task_id,
      sequence: e.sequence,
      time: e.time.toISOString(),
      kind: e.kind,
      data: e.data,
      actor: e.actor ?? null,
    })),
  );
}

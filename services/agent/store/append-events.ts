// The writer's shared steps (store/task-writer.ts): sequencing a change's events after the
// row's last one, appending them to `task_events` with the `tasks` update in one statement,
// the outbox hand-off, the post-commit wake-up, and the retry of conflicted transactions.
import { isTransactionConflict, type Sql, type Tx } from "../../shared/db/database.js";
import type { WakeupBus } from "../../shared/wakeup/bus.js";
import { currentActor } from "../model/actor.js";
import type { StoredEvent, TaskChange, TaskEventSink } from "../model/change.js";
import type { TaskRow } from "../model/task.js";
import { stateChangeSnapshot } from "../wire/task-json.js";

/** What every writer operation works with. */
export interface WriterDeps {
  sql: Sql;
  bus: WakeupBus;
  sink?: TaskEventSink;
  /** Told when a write sets a lease's or an input request's expiry (the sweeps' cached peek is then stale). */
  expiryWritten?: () => void;
  /** Told of every committed write's events, before its wake-up hint (the event hub takes them). */
  committed?: (task: TaskRow, events: readonly StoredEvent[]) => void;
}

/** Deadlocks and serialization failures are safe to retry: decisions are pure and re-run on the fresh row. */
export async function retryOnConflict<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= 3 || !isTransactionConflict(error)) throw error;
    }
  }
}

const PATCH_COLUMNS_JSON = new Set([
  "output",
  "error",
  "progress",
  "input_request",
  "artifacts",
  "checkpoint",
  "pending_input",
  "input_answer_ids",
]);

export const jsonOrNull = (sql: Sql, value: unknown) =>
  value === null || value === undefined ? null : sql.json(value as never);

/** Sequences the drafts after the row's last event and fills state_change snapshots
 * (which carry large fields once only: see `stateChangeSnapshot`). */
export function build(current: TaskRow, change: TaskChange, now: Date): { next: TaskRow; events: StoredEvent[] } {
  const drafts = [...(change.events ?? [])];
  const stateChanged = change.patch.state !== undefined && change.patch.state !== current.state;
  if (stateChanged) drafts.push({ kind: "stateChange", data: {} });
  const first = Number(current.last_sequence) + 1;
  const actor = currentActor();
  const next: TaskRow = {
    ...current,
    ...change.patch,
    last_sequence: first + drafts.length - 1,
    update_time: drafts.length > 0 || stateChanged ? now : current.update_time,
  };
  const events = drafts.map((draft, i): StoredEvent => {
    const sequence = first + i;
    if (draft.kind !== "stateChange") return { sequence, time: now, kind: draft.kind, data: draft.data, actor };
    return {
      sequence,
      time: now,
      kind: "stateChange",
      data: { state: `TASK_STATE_${next.state}`, task: stateChangeSnapshot(next, sequence) },
      actor,
    };
  });
  return { next, events };
}

function eventRows(sql: Sql, events: StoredEvent[]) {
  return sql.json(
    events.map((e) => ({
      sequence: e.sequence,
      time: e.time.toISOString(),
      kind: e.kind,
      data: e.data,
      actor: e.actor ?? null,
    })) as never,
  );
}

function columnsOf(sql: Sql, next: TaskRow, change: TaskChange): Record<string, unknown> {
  const columns: Record<string, unknown> = { last_sequence: next.last_sequence, update_time: next.update_time };
  for (const [column, value] of Object.entries(change.patch)) {
    if (value === undefined) continue;
    columns[column] = PATCH_COLUMNS_JSON.has(column) ? jsonOrNull(sql, value) : value;
  }
  return columns;
}

/** Applies `change` to the locked row `current` inside `tx`: the update, its events, the outbox. */
export async function write(
  w: WriterDeps,
  tx: Tx,
  current: TaskRow,
  change: TaskChange,
): Promise<{ task: TaskRow; events: StoredEvent[] }> {
  const { next, events } = build(current, change, new Date());
  const columns = columnsOf(w.sql, next, change);
  await tx`
    WITH changed AS (
      UPDATE tasks SET ${tx(columns as never)}
      WHERE tenant_id = ${current.tenant_id} AND task_id = ${current.task_id}
      RETURNING 1
    )
    INSERT INTO task_events (tenant_id, task_id, sequence, time, kind, data, actor)
    SELECT ${current.tenant_id}, ${current.task_id}::uuid, e.sequence, e.time, e.kind, e.data, e.actor
    FROM jsonb_to_recordset(${eventRows(w.sql, events)}::jsonb) AS e(sequence bigint, time timestamptz, kind text, data jsonb, actor text)
  `;
  if (w.sink && events.length > 0 && w.sink.wants(next, events)) await w.sink.append(tx, next, events);
  if ("lease_expires_at" in change.patch || "input_expires_at" in change.patch) w.expiryWritten?.();
  return { task: next, events };
}

/** After commit: the events to this process's watchers, the wake-up hints, and the sink's post-commit hook. */
export function announce(w: WriterDeps, task: TaskRow, events: readonly StoredEvent[]): void {
  if (events.length === 0) return;
  w.committed?.(task, events);
  w.bus.publish("task", task.task_id);
  if (task.state === "QUEUED") w.bus.publish("queue", task.task_id);
  w.sink?.afterCommit?.(task, events);
}
